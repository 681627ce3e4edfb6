// A process's descriptor limit (RLIMIT_NOFILE), raised to what its configuration needs.
//
// Shells and many service managers start processes with a soft limit of 1024, far below what a
// worker serving thousands of clients needs; the hard limit is usually much higher. rend raises
// the soft limit itself (as memcached does for its -c), up to the hard limit, and says so when
// even the hard limit is too low: connections past it would be refused.
#pragma once

#include <cstdint>

#include "common/config.h"

namespace rend {

// What one worker process needs: worker.max_connections clients, its backend connections, its
// listening sockets, and a few more (the stats block, the loop's own, logging).
uint64_t worker_descriptors(const Config& config);
// What the supervisor should give its children: a worker's need, and memcached's -c (memcached
// raises its own limit to that, up to the hard limit it inherits).
uint64_t supervisor_descriptors(const Config& config);

struct FdLimit {
  uint64_t wanted = 0;
  uint64_t before = 0;  // the soft limit found
  uint64_t now = 0;     // the soft limit in force after raising
  uint64_t hard = 0;
  bool enough() const;
};

// Raises the soft limit to `wanted` descriptors (never lowers it; at most the hard limit).
FdLimit raise_fd_limit(uint64_t wanted);

// Logs what raise_fd_limit did for `who`: a raise at info, a shortfall as a warning.
void log_fd_limit(const FdLimit& limit, const char* who, const char* why);

}  // namespace rend
