// Publishes rend-l2's RocksDB figures into the supervisor's shared stats block (its L2 slot), for
// the Prometheus metrics. Only when rend-l2 runs under the supervisor (--stats-fd).
//
// Once a second a job on the Executor reads the figures (RocksDB properties and a walk of the data
// directory, which may touch the disk) and stores them: never on the event loop. The slot's pid
// is set while rend-l2 runs and cleared on a clean stop, which is how the exporter knows whether
// the figures are current.
//
// Lifetime: owned by the Server; stop() before the Executor shuts down.
#pragma once

#include <uv.h>

#include "common/shared_stats.h"
#include "l2/executor.h"
#include "l2/l2_stats.h"
#include "l2/store.h"

namespace rend::l2 {

class GaugePublisher : public Job {
 public:
  static constexpr uint64_t kIntervalMs = 1000;

  GaugePublisher(uv_loop_t* loop, Executor& executor, const Store& store, const L2Stats& counters, SharedStats stats);
  GaugePublisher(const GaugePublisher&) = delete;
  GaugePublisher& operator=(const GaugePublisher&) = delete;

  void start();
  void stop();  // clears the pid: the figures are no longer refreshed
  void run() override;
  void complete() override { busy_ = false; }

 private:
  Executor& executor_;
  const Store& store_;
  const L2Stats& counters_;
  SharedStats stats_;
  uv_timer_t* timer_;  // freed in its close callback
  bool busy_ = false;
  bool stopped_ = false;
};

}  // namespace rend::l2
