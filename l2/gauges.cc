#include "l2/gauges.h"

#include <unistd.h>

namespace rend::l2 {

GaugePublisher::GaugePublisher(uv_loop_t* loop, Executor& executor, const Store& store, const L2Stats& counters,
                               SharedStats stats)
    : executor_(executor), store_(store), counters_(counters), stats_(std::move(stats)), timer_(new uv_timer_t) {
  uv_timer_init(loop, timer_);
  timer_->data = this;
}

void GaugePublisher::start() {
  stats_.block()->l2.pid.store(getpid(), std::memory_order_relaxed);
  executor_.submit(this);  // the first figures at once, not a second late
  busy_ = true;
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<GaugePublisher*>(t->data);
        if (self->busy_) return;  // a slow disk: skip a beat rather than queue up
        self->busy_ = true;
        self->executor_.submit(self);
      },
      kIntervalMs, kIntervalMs);
}

void GaugePublisher::stop() {
  if (stopped_) return;
  stopped_ = true;
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  stats_.block()->l2.pid.store(0, std::memory_order_relaxed);
}

void GaugePublisher::run() {
  const StoreFigures f = store_.figures();
  L2Slot& slot = stats_.block()->l2;
  auto set = [&](L2Gauge g, uint64_t v) { slot.values[static_cast<size_t>(g)].store(v, std::memory_order_relaxed); };
  set(L2Gauge::live_data_bytes, f.live_data_bytes);
  set(L2Gauge::sst_files_bytes, f.sst_files_bytes);
  set(L2Gauge::pending_compaction_bytes, f.pending_compaction_bytes);
  set(L2Gauge::write_stall_micros, f.write_stall_micros);
  set(L2Gauge::block_cache_hits, f.block_cache_hits);
  set(L2Gauge::block_cache_misses, f.block_cache_misses);
  set(L2Gauge::disk_bytes, f.disk_bytes);
  set(L2Gauge::keys_estimate, f.keys_estimate);
  set(L2Gauge::write_errors, counters_.get(L2Counter::l2_write_errors));
  set(L2Gauge::write_stops, store_.write_stops());
  set(L2Gauge::writable, store_.writable() ? 1 : 0);
}

}  // namespace rend::l2
