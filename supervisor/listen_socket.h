// Listening sockets created and held by the supervisor. Workers get duplicates; because the
// supervisor keeps its own, a socket (and the connections queued on it) outlives any worker.
#pragma once

#include <string>

#include "common/status.h"

namespace rend::supervisor {

// A TCP socket with SO_REUSEPORT (one per worker slot, same address), listening, close-on-exec.
Status open_tcp_listener(const std::string& host, int port, int backlog, int& fd_out);
// A unix stream socket at `path` (a stale socket file is replaced), listening, close-on-exec.
Status open_unix_listener(const std::string& path, int backlog, int& fd_out);

}  // namespace rend::supervisor
