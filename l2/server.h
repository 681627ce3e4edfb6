// rend-l2's event loop: listeners, connections, signals, and the graceful stop.
//
// One libuv loop on the main thread does all socket I/O and parsing; requests run on the
// Executor's threads against the Engine. run() listens (a stale unix socket file is removed
// first), announces readiness on the ready fd, and returns when the loop ends.
//
// SIGTERM/SIGINT: stop accepting, answer every request already received (including those still
// in the kernel's buffers), close each connection between requests, join the worker threads and
// return 0; the caller then closes RocksDB. Connections still busy after kDrainTimeoutMs (a
// client that never reads its replies) are closed regardless.
#pragma once

#include <uv.h>

#include <memory>
#include <unordered_set>
#include <vector>

#include "common/shared_stats.h"
#include "l2/engine.h"
#include "l2/executor.h"
#include "l2/gauges.h"
#include "l2/l2_stats.h"
#include "l2/options.h"
#include "l2/store.h"

namespace rend::l2 {

class Connection;

class Server {
 public:
  static constexpr uint64_t kDrainTimeoutMs = 5000;
  // The InlineBudget of each turn of the loop: reads from memory cost ~1-2 µs a key, a small
  // write (memtable insert, its share of one WAL write, no fsync) 1-3 µs, so a turn spends at
  // most ~0.5 ms inline. Writes get the larger budget: a worker's batch holds several of them,
  // and handing one to a thread (two wake-ups) costs more than writing it here.
  static constexpr size_t kInlineReadKeys = 64;
  static constexpr size_t kInlineWriteKeys = 128;
  // And at most this much value data a turn (each segment also at most
  // Engine::kInlineWriteBytes): 128 segments of 64 KiB would hold the loop for milliseconds.
  static constexpr size_t kInlineWriteBytes = 512 * 1024;

  // `shared`: the supervisor's stats block (--stats-fd) to publish RocksDB figures into, or an
  // empty SharedStats when running on its own.
  Server(uv_loop_t* loop, L2Options options, Store& store, SharedStats shared);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  int run();

  uv_loop_t* loop() const { return loop_; }
  Engine& engine() { return engine_; }
  Executor& executor() { return *executor_; }
  L2Stats& stats() { return stats_; }
  size_t max_item_size() const { return options_.max_item_size; }
  size_t output_high_water() const { return options_.output_high_water; }
  // What the loop may still execute itself in this turn (see InlineBudget).
  InlineBudget& inline_budget() { return inline_budget_; }
  // The largest request worth buffering: a value of max_item_size plus its command line, or a
  // long text multi-get.
  size_t max_request_bytes() const { return options_.max_item_size + proto::kMaxTextGetLine + 4096; }

  void on_connection_closed(Connection* c);

 private:
  bool listen_unix();
  bool listen_tcp();
  bool start_listening(uv_stream_t* s, bool tcp);
  void on_new_connection(uv_stream_t* server, bool tcp);
  void begin_drain();
  void maybe_finish();
  void refill_inline_budget();

  uv_loop_t* loop_;
  L2Options options_;
  Store& store_;
  SharedStats shared_;
  L2Stats stats_;
  Engine engine_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<GaugePublisher> gauges_;
  std::vector<uv_handle_t*> listeners_;
  std::unordered_set<Connection*> connections_;
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  uv_timer_t drain_timer_;
  uv_prepare_t budget_refill_;
  InlineBudget inline_budget_;
  bool draining_ = false;
  bool finished_ = false;
};

}  // namespace rend::l2
