// A planned restart of the supervised memcached (rendctl restart-memcached, or a reload that
// changes memcached's settings) that clients do not notice: the workers hold their L1 requests
// while memcached is down, and memcached keeps its items across the restart in its memory file
// (memcached -e, saved on SIGUSR1) when warm restarts are possible.
//
// Why no L1 copy can be stale afterwards: every worker stops sending to L1 before memcached stops
// and sends what it held, in order, only to the new one, so no write is lost between the two; and
// nothing else writes to L2 while L1 is held except through workers whose L1 steps are among the
// held requests.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "supervisor/supervisor.h"

namespace rend::supervisor {

std::vector<ChildProcess*> Supervisor::running_workers() const {
  std::vector<ChildProcess*> out;
  for (const auto& s : slots_) {
    if (s->worker && s->worker->running()) out.push_back(s->worker.get());
    if (s->replacement != nullptr && s->replacement->running()) out.push_back(s->replacement);
  }
  for (const auto& c : retired_) {
    if (c->running()) out.push_back(c.get());
  }
  return out;
}

void Supervisor::restart_memcached(std::function<void(Status)> done) {
  if (!memcached_ || !memcached_->running()) {
    done(Status::error("memcached is not running under rend (memcached.enabled, or it is down)"));
    return;
  }
  memcached_restart_waiters_.push_back(std::move(done));
  if (memcached_restarting_) return;
  memcached_restarting_ = true;
  spdlog::info("restarting memcached ({}): holding L1 requests in every worker",
               memcached_started_warm_ ? "its items kept in its memory file" : "no memory file: L1 starts empty");
  l1_hold_pending_.clear();
  for (ChildProcess* w : running_workers()) {
    if (w->send_command("l1-hold", -1)) l1_hold_pending_.push_back(w);
  }
  // A worker that does not confirm in time (busy, or its L1 requests are timing out) does not
  // hold up the restart for long: its requests then fail as they would in an unplanned one.
  uv_timer_start(
      &l1_hold_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Supervisor*>(t->data);
        spdlog::warn("{} workers did not confirm their L1 hold in time; restarting memcached anyway",
                     self->l1_hold_pending_.size());
        self->l1_hold_pending_.clear();
        self->restart_held_memcached();
      },
      static_cast<uint64_t>(config_.l1.timeout_ms) + 1000, 0);
  if (l1_hold_pending_.empty()) restart_held_memcached();
}

void Supervisor::on_l1_held(ChildProcess* worker) {
  if (!memcached_restarting_) return;
  const size_t before = l1_hold_pending_.size();
  std::erase(l1_hold_pending_, worker);
  if (before > 0 && l1_hold_pending_.empty()) restart_held_memcached();
}

void Supervisor::restart_held_memcached() {
  uv_timer_stop(&l1_hold_timer_);
  if (!memcached_restarting_ || !l1_hold_pending_.empty()) return;
  memcached_->restart([this] { finish_memcached_restart(Status::ok()); },
                      [this] { finish_memcached_restart(Status::error("memcached did not come back; see the log")); });
}

void Supervisor::finish_memcached_restart(Status outcome) {
  memcached_restarting_ = false;
  l1_hold_pending_.clear();
  uv_timer_stop(&l1_hold_timer_);
  for (ChildProcess* w : running_workers()) w->send_command("l1-release", -1);
  if (outcome) {
    spdlog::info("memcached restarted (pid {}); workers send their held L1 requests", memcached_->pid());
  } else {
    spdlog::error("memcached restart: {}", outcome.message());
  }
  auto waiters = std::move(memcached_restart_waiters_);
  memcached_restart_waiters_.clear();
  for (auto& w : waiters) w(outcome);
}

}  // namespace rend::supervisor
