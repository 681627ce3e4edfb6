#include "common/fd_limit.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>

namespace rend {

namespace {
constexpr uint64_t kReserve = 64;
}

uint64_t worker_descriptors(const Config& c) {
  const uint64_t l2 = c.l2.enabled ? static_cast<uint64_t>(c.l2.backend.connections) : 0;
  // l1only speaks the meta protocol to memcached on connections of its own.
  const uint64_t l1 = static_cast<uint64_t>(c.l1.connections) * (c.l2.enabled ? 1 : 2);
  return static_cast<uint64_t>(c.worker.max_connections) + l1 + l2 + kReserve;
}

uint64_t supervisor_descriptors(const Config& c) {
  const uint64_t memcached = c.memcached.enabled ? static_cast<uint64_t>(c.memcached.max_connections) + kReserve : 0;
  return std::max(worker_descriptors(c), memcached);
}

bool FdLimit::enough() const { return now >= wanted; }

FdLimit raise_fd_limit(uint64_t wanted) {
  FdLimit out;
  out.wanted = wanted;
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return out;
  out.before = out.now = r.rlim_cur;
  out.hard = r.rlim_max;
  if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < wanted) {
    rlimit raised = r;
    raised.rlim_cur = r.rlim_max == RLIM_INFINITY ? wanted : std::min<rlim_t>(wanted, r.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) out.now = raised.rlim_cur;
  }
  return out;
}

void log_fd_limit(const FdLimit& limit, const char* who, const char* why) {
  if (!limit.enough()) {
    spdlog::warn(
        "{}: {} needs {} descriptors but the hard limit is {} (soft now {}): connections past it will be refused; "
        "raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower the setting",
        who, why, limit.wanted, limit.hard, limit.now);
  } else if (limit.now != limit.before) {
    spdlog::info("{}: descriptor limit raised from {} to {} ({})", who, limit.before, limit.now, why);
  }
}

}  // namespace rend
