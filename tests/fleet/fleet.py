"""Hosts for the fleet tests: each a Debian rootfs (tests/fleet/host_image.sh) booted by
systemd-nspawn with systemd as PID 1, on an overlayfs of its own over the shared image, in a network
namespace of its own so that every host runs rend on its default ports. Ansible drives them through
the community.docker.nsenter connection (no sshd; connection_plugins/ adds pipelining to it); the test reaches their ports from inside their
namespaces."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ANSIBLE_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "deploy", "ansible"))


def run(argv, timeout=60, check=True, **kw):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and out.returncode != 0:
        raise AssertionError(f"{argv}: exit {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


def wait_until(predicate, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Host:
    def __init__(self, name, rootfs, workdir, prefix):
        self.name = name
        self.rootfs = rootfs
        self.netns = f"{prefix}-{name}"
        self.dir = os.path.join(workdir, name)
        self.root = os.path.join(self.dir, "root")
        self.proc = None
        for d in ("upper", "work", "root"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        run(["ip", "netns", "add", self.netns])
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])

    def boot(self, timeout=90):
        if not os.path.ismount(self.root):
            run(["mount", "-t", "overlay", "overlay", "-o",
                 f"lowerdir={self.rootfs},upperdir={self.dir}/upper,workdir={self.dir}/work", self.root])
        console = open(os.path.join(self.dir, "console.log"), "ab")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", self.root, "--boot", "--register=no", "--keep-unit", "-q",
             f"--network-namespace-path=/run/netns/{self.netns}", f"--machine={self.name}"],
            stdin=subprocess.DEVNULL, stdout=console, stderr=console, start_new_session=True)
        console.close()
        wait_until(lambda: self.leader() or self.proc.poll() is not None, 30, f"{self.name}'s systemd")
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name}: systemd-nspawn exited with {self.proc.returncode}")
        # "degraded" is a booted host too (a unit that cannot work in a container). Until systemd
        # listens on its socket, systemctl answers nothing.
        states = []

        def booted():
            states.append(self.sh("systemctl is-system-running --wait", check=False, timeout=timeout).stdout.strip())
            return states[-1] in ("running", "degraded")

        wait_until(booted, timeout, f"{self.name} to boot (states seen: {states})", interval=0.2)

    def leader(self):
        """The host's PID 1 (systemd) as this machine sees it, or 0."""
        if self.proc is None:
            return 0
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                children = f.read().split()
        except OSError:
            return 0
        return int(children[0]) if children else 0

    def sh(self, command, check=True, timeout=60):
        """A shell command inside the host (all its namespaces), as root."""
        return run(["nsenter", "-t", str(self.leader()), "-a", "--", "sh", "-c", command], timeout=timeout,
                   check=check)

    def in_netns(self, argv):
        """argv for a process of the test's own that runs in the host's network namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def poweroff(self, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.sh("systemctl poweroff", check=False)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        """Kills the host at once: its PID 1 first (which takes every process of the host with it; killing
        only systemd-nspawn would leave them running), then systemd-nspawn."""
        if self.proc is None or self.proc.poll() is not None:
            return
        leader = self.leader()
        if leader:
            os.kill(leader, signal.SIGKILL)
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def destroy(self):
        self.kill()
        if os.path.ismount(self.root):
            run(["umount", "-l", self.root], check=False)
        run(["ip", "netns", "del", self.netns], check=False)

    # rend on the host
    def rend_status(self):
        out = self.sh("rendctl --config /etc/rend/rend.json --json status", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def supervisor_pid(self):
        status = self.rend_status()
        return status["supervisor"]["pid"] if status else 0

    def memcached(self, request, port=11211):
        """Requests on the host's rend port, from its namespace: the replies, read until they end with
        END (when a get was sent) or a line."""
        until = b"END\r\n" if b"get " in request else b"\r\n"
        code = ("import socket,sys\n"
                "s=socket.create_connection(('127.0.0.1',%d),timeout=5);s.sendall(sys.stdin.buffer.read())\n"
                "b=b''\n"
                "while not b.endswith(%r):\n"
                "    c=s.recv(65536)\n"
                "    if not c: break\n"
                "    b+=c\n"
                "sys.stdout.buffer.write(b)\n" % (port, until))
        return subprocess.run(self.in_netns(["python3", "-c", code]), input=request, capture_output=True,
                              timeout=30).stdout


class Fleet:
    def __init__(self, names, rootfs, workdir):
        self.workdir = workdir
        self.prefix = f"rendfleet{os.getpid()}"
        self.runs = 0
        self.signal_dir = os.path.join(workdir, "signals")
        os.makedirs(self.signal_dir)
        self.hosts = {}
        for name in names:
            self.hosts[name] = Host(name, rootfs, workdir, self.prefix)

    def boot(self):
        for host in self.hosts.values():
            host.boot()

    def destroy(self):
        for host in self.hosts.values():
            host.destroy()

    def inventory(self, package, extra=None):
        """An inventory of the booted hosts (their PIDs change when they reboot)."""
        hosts = {
            name: {"ansible_connection": "nsenter_pipelined", "ansible_nsenter_pid": h.leader(),
                   "ansible_python_interpreter": "/usr/bin/python3"}
            for name, h in self.hosts.items()
        }
        group_vars = {
            "rend_package": package,
            "rend_drain_tasks": os.path.join(HERE, "hooks", "drain.yml"),
            "rend_undrain_tasks": os.path.join(HERE, "hooks", "undrain.yml"),
            "fleet_signal_dir": self.signal_dir,
        }
        group_vars.update(extra or {})
        path = os.path.join(self.workdir, "inventory.json")
        with open(path, "w") as f:
            json.dump({"rend_fleet": {"hosts": hosts, "vars": group_vars}}, f)
        return path

    def playbook(self, name, package, extra_vars=None, args=(), host_vars=None, timeout=240):
        """ansible-playbook NAME on the fleet: (exit code, output, recap per host)."""
        inventory = self.inventory(package)
        if host_vars:
            with open(inventory) as f:
                inv = json.load(f)
            for host, values in host_vars.items():
                inv["rend_fleet"]["hosts"][host].update(values)
            with open(inventory, "w") as f:
                json.dump(inv, f)
        argv = ["ansible-playbook", "-i", inventory, os.path.join(ANSIBLE_DIR, name), *args]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ANSIBLE_DIR, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", ANSIBLE_PIPELINING="True",
                   ANSIBLE_CONNECTION_PLUGINS=os.path.join(HERE, "connection_plugins"),
                   ANSIBLE_LOCAL_TEMP=os.path.join(self.workdir, "ansible-tmp"))
        started = time.monotonic()
        self.runs += 1
        log_path = os.path.join(self.workdir, f"ansible-{self.runs}-{name}.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with open(log_path) as log:
            output = log.read()
        if os.environ.get("REND_FLEET_LOGS"):  # keep every run's output (with its task timings)
            shutil.copy(log_path, os.environ["REND_FLEET_LOGS"])
        if proc.returncode == -9:
            raise AssertionError(f"ansible-playbook {name} took over {timeout} s:\n{output[-8000:]}")
        recap = {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
                 for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M)}
        print(f"  ansible-playbook {name} {' '.join(args)}: exit {proc.returncode} in "
              f"{time.monotonic() - started:.1f} s; "
              f"{ {h: {k: r[k] for k in ('changed', 'failed', 'rescued')} for h, r in recap.items()} }", flush=True)
        return proc.returncode, output, recap

    def start_clients(self):
        return Clients(self)


class Clients:
    """A verifying client per host (verifying_client.py), for the duration of a change."""

    def __init__(self, fleet):
        self.fleet = fleet
        self.procs = {}
        self.counts = {}

    def __enter__(self):
        for name, host in self.fleet.hosts.items():
            ready = os.path.join(self.fleet.signal_dir, f"{name}.ready")
            if os.path.exists(ready):
                os.unlink(ready)
            out = os.path.join(self.fleet.workdir, f"client-{name}.json")
            log = open(os.path.join(self.fleet.workdir, f"client-{name}.log"), "ab")
            self.procs[name] = (subprocess.Popen(
                host.in_netns(["python3", os.path.join(HERE, "verifying_client.py"), name, "11211",
                               self.fleet.signal_dir, out]), stdout=log, stderr=log), out)
            log.close()
        # Every client has a connection and an answered request before the change starts: on a
        # busy machine starting Python in a host's namespace can take longer than the test waits,
        # and a client that first connects while rend is stopping is not a kept connection.
        deadline = time.monotonic() + 60
        for name in self.procs:
            ready = os.path.join(self.fleet.signal_dir, f"{name}.ready")
            while not os.path.exists(ready):
                if time.monotonic() > deadline:
                    raise AssertionError(f"the verifying client of {name} got no answer in 60 s")
                time.sleep(0.05)
        time.sleep(0.3)  # and a few requests more
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)  # and goes on after it
        for name, (proc, out) in self.procs.items():
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            with open(out) as f:
                self.counts[name] = json.load(f)
        print(f"  verifying clients: {self.counts}", flush=True)
        return False


def host_image(deb):
    """The cached rootfs (tests/fleet/host_image.sh builds it the first time)."""
    out = run([os.path.join(HERE, "host_image.sh"), deb], timeout=900)
    return out.stdout.strip().splitlines()[-1]


def copy_release(deb, directory, version=None):
    """The build's .deb in DIRECTORY with its .sha256, as make package leaves it; with VERSION, the
    same package rebuilt under another version (a new release to upgrade to)."""
    os.makedirs(directory, exist_ok=True)
    if version is None:
        target = os.path.join(directory, os.path.basename(deb))
        shutil.copy(deb, target)
    else:
        tree = os.path.join(directory, "tree-" + version)
        run(["dpkg-deb", "-R", deb, tree])
        control = os.path.join(tree, "DEBIAN", "control")
        with open(control) as f:
            text = re.sub(r"^Version: .*$", f"Version: {version}", f.read(), flags=re.M)
        with open(control, "w") as f:
            f.write(text)
        target = os.path.join(directory, f"rend_{version}_amd64.deb")
        run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", tree, target], timeout=120)
        shutil.rmtree(tree)
    digest = run(["sha256sum", target]).stdout.split()[0]
    with open(target + ".sha256", "w") as f:
        f.write(f"{digest}  {os.path.basename(target)}\n")
    return target
