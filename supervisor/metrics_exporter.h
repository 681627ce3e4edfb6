// The Prometheus /metrics endpoint of the supervisor (prometheus-cpp's Exposer, its own threads).
//
// Workers and rend-l2 never talk to it: at each scrape the collector reads their slots of the
// shared stats block, so recording a metric costs a worker only a store to its own memory.
// Supervisor-level figures (restarts, reloads, children up) are atomics the supervisor's loop
// updates and the scrape thread reads.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/shared_stats.h"
#include "common/status.h"

namespace prometheus {
class Exposer;
}

namespace rend::supervisor {

struct SupervisorMetrics {
  std::atomic<uint64_t> worker_restarts[kMaxWorkerSlots] = {};
  std::atomic<uint64_t> memcached_restarts{0};
  std::atomic<uint64_t> l2_restarts{0};
  std::atomic<uint64_t> reloads_ok{0};
  std::atomic<uint64_t> reloads_failed{0};
  std::atomic<uint64_t> upgrades_ok{0};  // in-place upgrades (rendctl upgrade)
  std::atomic<uint64_t> upgrades_failed{0};
  std::atomic<int64_t> workers_up{0};
  std::atomic<int64_t> memcached_up{0};
  std::atomic<int64_t> l2_up{0};
  std::atomic<int64_t> slots_in_use[kMaxWorkerSlots] = {};  // 1 while slot i has a worker slot
};

class MetricsExporter {
 public:
  MetricsExporter(const SharedStats& stats, const SupervisorMetrics& supervisor);
  ~MetricsExporter();
  // Starts serving `address` ("127.0.0.1:11299"); the error names the address when it cannot.
  Status start(const std::string& address);

 private:
  class Collector;
  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace rend::supervisor
