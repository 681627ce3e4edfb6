// Listening sockets created and held by the supervisor. Workers get duplicates; because the
// supervisor keeps its own, a socket (and the connections queued on it) outlives any worker.
#pragma once

#include <string>

#include "common/status.h"

namespace rend::supervisor {

// A TCP socket with SO_REUSEPORT (one per worker slot, same address), listening, close-on-exec.
Status open_tcp_listener(const std::string& host, int port, int backlog, int& fd_out);
// Fails if another process already listens on host:port. SO_REUSEPORT would otherwise let a
// second rend (same user) share the port silently, splitting clients between two caches.
Status ensure_port_free(const std::string& host, int port);
// A unix stream socket at `path` (a stale socket file is replaced), listening, close-on-exec.
Status open_unix_listener(const std::string& path, int backlog, int& fd_out);

}  // namespace rend::supervisor
