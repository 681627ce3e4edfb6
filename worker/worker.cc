#include "worker/worker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fd_limit.h"
#include "common/race_window.h"
#include "worker/client_connection.h"

namespace rend::worker {

namespace {
constexpr uint64_t kTickMs = 50;  // how often backend deadlines are checked
// A hold that the supervisor did not release by then (it died mid-restart) ends here: held
// requests are sent, or fail if the service is still down.
constexpr uint64_t kMaxHoldMs = 30000;
}  // namespace

Worker::Worker(uv_loop_t* loop, Config config, WorkerOptions options, SharedStats stats, const BackendFactory& backends)
    : loop_(loop),
      config_(std::move(config)),
      options_(options),
      stats_(std::move(stats)),
      admission_(config_.l2.enabled && config_.l2.backfill_frequency, config_.l2.admission_width),
      delayed_burials_(static_cast<uint64_t>(tier_race_window_ms(config_))),
      acceptor_(
          loop, [this](int fd, bool tcp, TierMode mode) { on_new_connection(fd, tcp, mode); },
          [this] { bump(this->stats(), Counter::accept_pauses); }),
      dispatcher_(*this) {
  // Backend responses are bounded: the largest value L1 may hold plus headers.
  const size_t max_body = config_.worker.max_item_size + 64 * 1024;
  l1_ = std::make_unique<BackendPool>(*this, Tier::kL1, config_.l1, max_body, backends);
  if (config_.l1_chunked) chunk_store_ = std::make_unique<ChunkStore>(config_.l1_chunk_size);
  if (!config_.l2.enabled && !config_.l1_chunked) {
    l1_meta_ = std::make_unique<BackendPool>(*this, Tier::kL1, config_.l1, max_body, backends);
  }
  if (config_.l2.enabled) l2_ = std::make_unique<BackendPool>(*this, Tier::kL2, config_.l2.backend, max_body, backends);
  if (admission_.frequency()) room_poll_ = std::make_unique<L1RoomPoll>(*this);
}

Worker::~Worker() = default;

ClientConnection* Worker::open_connection(int fd, bool tcp, TierMode mode) {
  auto* c = new ClientConnection(*this, tcp, mode);
  const int rc = tcp ? uv_tcp_open(reinterpret_cast<uv_tcp_t*>(c->stream()), fd)
                     : uv_pipe_open(reinterpret_cast<uv_pipe_t*>(c->stream()), fd);
  if (rc != 0) {
    close(fd);
    uv_close(reinterpret_cast<uv_handle_t*>(c->stream()),
             [](uv_handle_t* h) { delete static_cast<ClientConnection*>(h->data); });
    return nullptr;
  }
  connections_.insert(c);
  return c;
}

void Worker::on_new_connection(int fd, bool tcp, TierMode mode) {
  ClientConnection* c = open_connection(fd, tcp, mode);
  if (c == nullptr) return;
  if (draining_ || connections_.size() > static_cast<size_t>(config_.worker.max_connections)) {
    bump(stats(), Counter::rejected_connections);
    c->close();
    return;
  }
  if (tcp) {
    uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(c->stream()), 1);
    uv_tcp_keepalive(reinterpret_cast<uv_tcp_t*>(c->stream()), 1, 30);
  }
  c->counted = true;
  bump(stats(), Counter::curr_connections);
  bump(stats(), Counter::total_connections);
  c->start();
}

void Worker::on_handed_connection(HandedConnection h) {
  if (h.mode == TierMode::kL1L2Batch && !l2_) {
    close(h.fd);  // cannot happen within one rend (L2 on or off needs a restart); never serve it wrongly
    return;
  }
  // Not held to worker.max_connections: the client was admitted already, and the total over the
  // workers does not change.
  ClientConnection* c = open_connection(h.fd, h.tcp, h.mode);
  if (c == nullptr) return;
  c->adopt(h);
  c->counted = true;
  bump(stats(), Counter::curr_connections);
  if (draining_) {
    if (hand_off_) {
      c->hand_off();  // passed straight on: this worker is leaving too
    } else {
      c->drain();
    }
  }
  if (!c->closing()) c->start();
}

void Worker::take_over_from(int channel_fd) {
  take_overs_.push_back(std::make_unique<HandoffReceiver>(
      loop_, channel_fd, [this](HandedConnection h) { on_handed_connection(std::move(h)); },
      [this] { maybe_finish_drain(); }));
}

void Worker::begin_hand_off(int channel_fd) {
  if (draining_) {
    close(channel_fd);  // already stopping (SIGTERM): its clients close between requests
    return;
  }
  hand_off_ = std::make_unique<HandoffSender>(loop_, channel_fd);
  begin_drain();
}

void Worker::hold(Tier tier) {
  BackendPool* p = pool(tier);
  if (p == nullptr || p->holding()) return;
  spdlog::info("{} restarting: holding {} requests", tier == Tier::kL1 ? "memcached" : "rend-l2", tier_name(tier));
  p->hold();
  if (tier == Tier::kL1 && l1_meta_) l1_meta_->hold();
  Hold& h = hold_of(tier);
  h.told = false;
  h.until_ms = uv_now(loop_) + kMaxHoldMs;
  check_holds(uv_now(loop_));
}

void Worker::release(Tier tier) {
  BackendPool* p = pool(tier);
  if (p == nullptr || !p->holding()) return;
  spdlog::info("{} is back: sending the held {} requests", tier == Tier::kL1 ? "memcached" : "rend-l2",
               tier_name(tier));
  p->release();
  if (tier == Tier::kL1 && l1_meta_) l1_meta_->release();
  maybe_finish_drain();
}

void Worker::check_holds(uint64_t now_ms) {
  for (Tier tier : {Tier::kL1, Tier::kL2}) {
    BackendPool* p = pool(tier);
    if (p == nullptr || !p->holding()) continue;
    Hold& h = hold_of(tier);
    if (!h.told && p->answered_all() && (tier != Tier::kL1 || !l1_meta_ || l1_meta_->answered_all())) {
      h.told = true;
      tell_supervisor(tier == Tier::kL1 ? "l1-held\n" : "l2-held\n");
    }
    if (now_ms >= h.until_ms) {
      spdlog::warn("{} held for {} ms without a release; sending the held requests", tier_name(tier), kMaxHoldMs);
      release(tier);
    }
  }
}

void Worker::tell_supervisor(const char* line) {
  if (options_.ready_fd < 0) return;
  if (write(options_.ready_fd, line, strlen(line)) < 0)
    spdlog::warn("cannot write to the supervisor: {}", strerror(errno));
}

bool Worker::hand_over(ClientConnection& c) {
  if (!hand_off_) return false;
  HandedConnection h = c.handoff_state();
  if (h.fd < 0) return false;
  hand_off_->send(std::move(h));
  bump(stats(), Counter::handed_over_connections);
  return true;
}

void Worker::on_connection_closed(ClientConnection* c) {
  connections_.erase(c);
  acceptor_.resume();  // a descriptor is free again
  if (c->counted) {
    drop(stats(), Counter::curr_connections);
    if (!c->handed_off) bump(stats(), Counter::closed_connections);
  }
  delete c;
  maybe_finish_drain();
}

void Worker::mark_dirty(ClientConnection* c) {
  if (c->dirty || c->closing()) return;
  c->dirty = true;
  dirty_clients_.push_back(c);
}

void Worker::mark_dirty(Backend* b) { dirty_backends_.push_back(b); }

void Worker::flush_dirty() {
  // Replies first: a reply flushed now may free room for more reads, whose requests then join
  // this turn's backend writes.
  while (!dirty_clients_.empty() || !dirty_backends_.empty()) {
    std::vector<ClientConnection*> clients;
    clients.swap(dirty_clients_);
    for (ClientConnection* c : clients) {
      c->dirty = false;
      c->flush();
    }
    std::vector<Backend*> backends;
    backends.swap(dirty_backends_);
    std::sort(backends.begin(), backends.end());
    backends.erase(std::unique(backends.begin(), backends.end()), backends.end());
    for (Backend* b : backends) b->flush();
  }
}

void Worker::begin_drain() {
  if (draining_) return;
  draining_ = true;
  spdlog::info("{} {} connections", hand_off_ ? "handing over" : "draining", connections_.size());
  acceptor_.close_all();
  std::vector<ClientConnection*> all(connections_.begin(), connections_.end());
  for (ClientConnection* c : all) {
    if (hand_off_) {
      c->hand_off();
    } else {
      c->drain();
    }
  }
  maybe_finish_drain();
}

void Worker::bury_after_race_window(std::string key) {
  // The clock now, not the loop's (which may lag by a busy turn): a burial must not come early.
  // The tick's loop time, compared against it, can only make it late.
  delayed_burials_.add(std::move(key), uv_hrtime() / 1000000);
}

void Worker::close_idle_connections(uint64_t now_ms) {
  const uint64_t timeout_ms = static_cast<uint64_t>(config_.worker.idle_timeout_s) * 1000;
  if (timeout_ms == 0 || now_ms < next_idle_scan_ms_ || now_ms < timeout_ms) return;
  next_idle_scan_ms_ = now_ms + 1000;  // memcached looks once a second too
  std::vector<ClientConnection*> idle;
  for (ClientConnection* c : connections_) {
    if (c->idle_since(now_ms - timeout_ms)) idle.push_back(c);
  }
  for (ClientConnection* c : idle) {
    bump(stats(), Counter::idle_kicks);
    c->close();
  }
}

void Worker::run_due_burials(uint64_t now_ms) {
  delayed_burials_.run_due(
      now_ms, [this](std::string key) { l1_->bury(std::move(key)); }, [this] { l1_->bury_all(); });
}

bool Worker::backends_idle() {
  return l1_->idle() && (l1_meta_ == nullptr || l1_meta_->idle()) && (l2_ == nullptr || l2_->idle());
}

void Worker::maybe_finish_drain() {
  if (!draining_ || finished_ || !connections_.empty()) return;
  // Connections another worker is still handing over would arrive with nobody to serve them.
  for (const auto& r : take_overs_) {
    if (r->open()) return;
  }
  if (hand_off_) {
    if (!hand_off_->idle()) return;  // sent as the receiver reads; the tick comes back here
    hand_off_->finish();             // the receiver sees the end: nothing more comes from here
  }
  // Burials still to come (or unanswered) would leave stale L1 copies behind: they are part of
  // the writes this worker answered. So would an L2 write still in flight for a client that has
  // gone (its L1 step, or its burial if L2 times out, is still to come). The tick calls back
  // here until all are done; a backend that is down answers nothing more and counts as idle.
  if (!delayed_burials_.empty() || !backends_idle()) return;
  finished_ = true;
  spdlog::info("drained; exiting");
  l1_->shutdown();
  if (l1_meta_) l1_meta_->shutdown();
  if (l2_) l2_->shutdown();
  uv_timer_stop(&tick_);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
  uv_check_stop(&flush_check_);
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_check_), nullptr);
  uv_prepare_stop(&clock_prepare_);
  uv_close(reinterpret_cast<uv_handle_t*>(&clock_prepare_), nullptr);
  MetricClockBatch::end();
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  if (commands_) commands_->close();
}

int Worker::run() {
  if (!start()) return 1;
  uv_run(loop_, UV_RUN_DEFAULT);
  return 0;
}

bool Worker::start() {
  log_fd_limit(raise_fd_limit(worker_descriptors(config_)), fmt::format("worker {}", options_.slot).c_str(),
               "worker.max_connections");
  WorkerSlot& s = stats();
  s.pid.store(getpid(), std::memory_order_relaxed);
  s.started_unix.store(static_cast<int64_t>(time(nullptr)), std::memory_order_relaxed);
  // Gauges describe this process only; counters carry on from the entry's previous owner.
  for (size_t i = 0; i < kCounterCount; ++i) {
    if (counter_is_gauge(static_cast<Counter>(i))) set_value(s, static_cast<Counter>(i), 0);
  }

  uv_check_init(loop_, &flush_check_);
  flush_check_.data = this;
  uv_check_start(&flush_check_, [](uv_check_t* h) {
    MetricClockBatch::end();
    static_cast<Worker*>(h->data)->flush_dirty();
  });
  // The metrics read the clock once per loop iteration: each poll phase is a batch of the metric
  // clock, begun right before the loop polls (so its reading comes after the wait) and ended in
  // the check phase above.
  uv_prepare_init(loop_, &clock_prepare_);
  uv_prepare_start(&clock_prepare_, [](uv_prepare_t*) { MetricClockBatch::begin(); });
  uv_timer_init(loop_, &tick_);
  tick_.data = this;
  uv_timer_start(
      &tick_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Worker*>(t->data);
        self->l1_->check_deadlines(uv_now(self->loop_));
        if (self->l1_meta_) self->l1_meta_->check_deadlines(uv_now(self->loop_));
        if (self->l2_) self->l2_->check_deadlines(uv_now(self->loop_));
        self->run_due_burials(uv_now(self->loop_));
        if (self->room_poll_ && !self->draining_) self->room_poll_->poll(uv_now(self->loop_));
        self->close_idle_connections(uv_now(self->loop_));
        self->check_holds(uv_now(self->loop_));
        self->maybe_finish_drain();
      },
      kTickMs, kTickMs);
  uv_signal_init(loop_, &sigterm_);
  sigterm_.data = this;
  uv_signal_start(
      &sigterm_, [](uv_signal_t* h, int) { static_cast<Worker*>(h->data)->begin_drain(); }, SIGTERM);
  uv_signal_init(loop_, &sigint_);
  sigint_.data = this;
  uv_signal_start(
      &sigint_, [](uv_signal_t* h, int) { static_cast<Worker*>(h->data)->begin_drain(); }, SIGINT);

  if (options_.command_fd >= 0) {
    commands_ = std::make_unique<SupervisorChannel>(loop_, options_.command_fd,
                                                    SupervisorChannel::Handlers{
                                                        [this](int fd) { begin_hand_off(fd); },
                                                        [this](int fd) { take_over_from(fd); },
                                                        [this](Tier tier) { hold(tier); },
                                                        [this](Tier tier) { release(tier); },
                                                    });
  }
  l1_->start();
  if (l1_meta_) l1_meta_->start();
  if (l2_) l2_->start();
  const TierMode main_mode = l2_ ? TierMode::kL1L2 : TierMode::kL1Only;
  bool ok = true;
  if (options_.tcp_listen_fd >= 0) ok = ok && acceptor_.add(options_.tcp_listen_fd, true, main_mode);
  if (options_.batch_listen_fd >= 0 && l2_)
    ok = ok && acceptor_.add(options_.batch_listen_fd, true, TierMode::kL1L2Batch);
  if (options_.unix_listen_fd >= 0) ok = ok && acceptor_.add(options_.unix_listen_fd, false, main_mode);
  if (!ok) return false;
  tell_supervisor("ready\n");  // the pipe stays open for later messages (l1-held, l2-held)
  spdlog::info("worker {} serving (l1 {} x{}{})", options_.slot, config_.l1.address, config_.l1.connections,
               l2_ ? fmt::format(", l2 {} x{}", config_.l2.backend.address, config_.l2.backend.connections) : "");
  return true;
}

}  // namespace rend::worker
