// rend-worker: one process, one thread, one libuv loop. Accepts clients on the listening sockets
// the supervisor handed over, and serves them through its own L1 connections.
//
// Lifecycle: run() announces readiness on the ready fd once it accepts, and returns when the loop
// ends. SIGTERM/SIGINT drain: stop accepting, answer every request already received, close each
// client between requests, then exit. The supervisor's "hand-off" command drains too, but hands
// each client to another worker at its next request boundary instead of closing it; "take-over"
// receives such connections (worker/connection_handoff.h). Nothing here is shared with another worker except the
// listening sockets (kernel-balanced) and this worker's own slot of the shared stats block.
#pragma once

#include <uv.h>

#include <memory>
#include <unordered_set>
#include <vector>

#include "common/config.h"
#include "common/shared_stats.h"
#include "worker/acceptor.h"
#include "worker/backend_pool.h"
#include "worker/backfill_admission.h"
#include "worker/chunked_l1.h"
#include "worker/connection_handoff.h"
#include "worker/delayed_burials.h"
#include "worker/dispatcher.h"
#include "worker/key_lock.h"
#include "worker/supervisor_channel.h"
#include "worker/tiered.h"

namespace rend::worker {

class ClientConnection;

struct WorkerOptions {
  int slot = 0;
  int stats_entry = 0;  // which of the slot's stats entries this process owns (the supervisor picks)
  int tcp_listen_fd = -1;
  int batch_listen_fd = -1;
  int unix_listen_fd = -1;
  int ready_fd = -1;
  int command_fd = -1;  // the supervisor's commands (worker/supervisor_channel.h)
};

class Worker {
 public:
  // `backends` makes each backend connection: real sockets by default, a scripted fake in the
  // worker's component tests.
  Worker(uv_loop_t* loop, Config config, WorkerOptions options, SharedStats stats,
         const BackendFactory& backends = real_backends());
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Runs until drained. Returns the process exit code.
  int run();
  // The part of run() before the loop: connects the backends, listens, announces readiness.
  // False if a listening socket cannot be served.
  bool start();

  uv_loop_t* loop() const { return loop_; }
  const Config& config() const { return config_; }
  int slot() const { return options_.slot; }
  WorkerSlot& stats() const {
    return stats_.entry(static_cast<size_t>(options_.slot), static_cast<size_t>(options_.stats_entry));
  }
  const SharedStats& shared_stats() const { return stats_; }
  BackendPool& l1() { return *l1_; }
  // l1only: connections to memcached that speak its meta protocol (meta commands pass through
  // them); null in the tiered modes, whose meta commands rend-l2 executes, and with chunked L1.
  BackendPool* l1_meta() { return l1_meta_.get(); }
  // Non-null when L1 is chunked (l1.chunked).
  ChunkStore* chunk_store() { return chunk_store_.get(); }
  BackendPool& l2() { return *l2_; }
  bool has_l2() const { return l2_ != nullptr; }
  KeyLock& key_lock() { return key_lock_; }
  // Which L2 hits are copied into L1 (l2.backfill_admission).
  BackfillAdmission& admission() { return admission_; }
  Dispatcher& dispatcher() { return dispatcher_; }

  // rend-l2 said a write of `key` raced another worker's: its L1 copy is buried again once the
  // race window has passed (DelayedBurials). A drain waits for these.
  void bury_after_race_window(std::string key);
  // Sends the burials due by `now_ms` (the tick calls it; component tests pass a later time
  // instead of waiting out the race window).
  void run_due_burials(uint64_t now_ms);
  bool burials_pending() const { return !delayed_burials_.empty(); }
  // Closes the client connections idle for worker.idle_timeout_s (the tick calls it).
  void close_idle_connections(uint64_t now_ms);

  void mark_dirty(ClientConnection* c);
  void mark_dirty(Backend* b);
  void on_connection_closed(ClientConnection* c);
  // Passes `c` (answered, between requests) to the worker this one hands its clients to. False if
  // it cannot (no handoff under way, or no descriptor left to duplicate its socket).
  bool hand_over(ClientConnection& c);
  // Serve the connections another worker hands over `channel_fd` / hand ours over it and exit.
  void take_over_from(int channel_fd);
  void begin_hand_off(int channel_fd);
  // A planned restart of memcached (L1) or rend-l2 (L2): the tier's requests are kept until
  // release (BackendPool::hold), and the supervisor is told ("l1-held", "l2-held") once every
  // request already sent to the tier has been answered.
  void hold(Tier tier);
  void release(Tier tier);

 private:
  void on_new_connection(int fd, bool tcp, TierMode mode);
  // Wraps an accepted or handed-over socket; null (the socket closed) if libuv cannot take it.
  ClientConnection* open_connection(int fd, bool tcp, TierMode mode);
  void on_handed_connection(HandedConnection h);
  void flush_dirty();
  void begin_drain();
  void maybe_finish_drain();
  // Says "l1-held" / "l2-held" once the tier has answered everything sent before the hold; ends
  // a hold the supervisor never released.
  void check_holds(uint64_t now_ms);
  // The tier's pool, or null (L2 off).
  BackendPool* pool(Tier tier) { return tier == Tier::kL1 ? l1_.get() : l2_.get(); }
  // A line to the supervisor on the ready pipe (kept open after "ready" for these).
  void tell_supervisor(const char* line);
  // L1 and L2 have answered everything sent to them (burials included).
  bool backends_idle();

  uv_loop_t* loop_;
  Config config_;
  WorkerOptions options_;
  SharedStats stats_;
  std::unique_ptr<BackendPool> l1_;
  std::unique_ptr<BackendPool> l1_meta_;
  std::unique_ptr<BackendPool> l2_;
  std::unique_ptr<ChunkStore> chunk_store_;
  KeyLock key_lock_;
  BackfillAdmission admission_;
  std::unique_ptr<L1RoomPoll> room_poll_;  // set while admission is "frequency"
  DelayedBurials delayed_burials_;
  Acceptor acceptor_;
  std::unique_ptr<SupervisorChannel> commands_;
  std::unique_ptr<HandoffSender> hand_off_;  // set once this worker hands its clients over
  std::vector<std::unique_ptr<HandoffReceiver>> take_overs_;
  Dispatcher dispatcher_;
  std::unordered_set<ClientConnection*> connections_;
  std::vector<ClientConnection*> dirty_clients_;
  std::vector<Backend*> dirty_backends_;
  uv_check_t flush_check_;
  uv_prepare_t clock_prepare_;  // begins the metric clock's batch for each poll (see MetricClockBatch)
  uv_timer_t tick_;
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  uint64_t next_idle_scan_ms_ = 0;
  struct Hold {
    bool told = false;  // the supervisor knows the tier has answered all
    uint64_t until_ms = 0;
  };
  Hold holds_[2];  // L1's, L2's
  Hold& hold_of(Tier tier) { return holds_[tier == Tier::kL1 ? 0 : 1]; }
  bool draining_ = false;
  bool finished_ = false;
};

}  // namespace rend::worker
