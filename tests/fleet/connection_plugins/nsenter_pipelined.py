"""community.docker.nsenter with pipelining: the fleet tests' connection to their hosts.

The collection's plugin already passes a task's input to the command it runs in the host, but does
not declare pipelining, so Ansible copies every module into the host and runs it in four or five
nsenter calls instead of one. On two cores that is most of a playbook's time."""
from ansible_collections.community.docker.plugins.connection.nsenter import DOCUMENTATION as _DOC
from ansible_collections.community.docker.plugins.connection.nsenter import Connection as _Nsenter

DOCUMENTATION = _DOC.replace("name: nsenter", "name: nsenter_pipelined", 1)


class Connection(_Nsenter):
    transport = "nsenter_pipelined"
    has_pipelining = True
