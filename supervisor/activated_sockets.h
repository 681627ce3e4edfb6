// Listening sockets handed over by systemd socket activation (rend.socket): LISTEN_FDS.
//
// A socket that systemd holds outlives rend: while rend is stopped or restarting, clients that
// connect wait in its backlog instead of being refused, and rend serves them once it is back.
// rend matches each handed socket to what its configuration listens on (the main port, the
// batch port, the unix socket) by the socket's own address; a configured listener with no handed
// socket is bound by rend as usual, and a handed socket that matches none is closed with a warning.
//
// With activation, every worker accepts on the one handed socket of a port (a duplicate each):
// the kernel's SO_REUSEPORT spreading needs sockets created by one user, and systemd creates these.
#pragma once

#include <functional>
#include <string>

namespace rend::supervisor {

struct ActivatedSockets {
  int main_fd = -1;
  int batch_fd = -1;
  int unix_fd = -1;

  // Takes the sockets systemd passed to this process, if any, and clears LISTEN_* from the
  // environment so that children do not take them too. `host` and the ports are the configured
  // ones (0 = not listening there). Descriptors that are not listeners are offered to `other` by
  // their name (LISTEN_FDNAMES: those rend stored itself, connection_store.h), and closed if it
  // does not take them.
  static ActivatedSockets take(const std::string& host, int port, int batch_port, const std::string& unix_path,
                               const std::function<bool(const std::string& name, int fd)>& other);
  bool any() const { return main_fd >= 0 || batch_fd >= 0 || unix_fd >= 0; }
};

}  // namespace rend::supervisor
