#include "supervisor/held_restart.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace rend::supervisor {

HeldRestart::HeldRestart(uv_loop_t* loop, Options options) : loop_(loop), options_(std::move(options)) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

void HeldRestart::restart(std::function<void(Status)> done) {
  Service* service = options_.service();
  if (service == nullptr || !service->running()) {
    done(Status::error(options_.what + " is not running under rend (not supervised, or it is down)"));
    return;
  }
  waiters_.push_back(std::move(done));
  if (restarting_) return;
  restarting_ = true;
  spdlog::info("restarting {}: holding {} requests in every worker", options_.what, options_.tier);
  pending_.clear();
  for (ChildProcess* w : options_.workers()) {
    if (w->send_command(command("hold"), -1)) pending_.push_back(w);
  }
  // A worker that does not confirm in time (busy, or its requests are timing out) does not hold
  // up the restart for long: its requests then fail as they would in an unplanned one.
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<HeldRestart*>(t->data);
        spdlog::warn("{} workers did not confirm their {} hold in time; restarting {} anyway", self->pending_.size(),
                     self->options_.tier, self->options_.what);
        self->pending_.clear();
        self->restart_when_held();
      },
      options_.hold_timeout_ms(), 0);
  if (pending_.empty()) restart_when_held();
}

bool HeldRestart::on_message(ChildProcess* worker, std::string_view line) {
  if (line != command("held")) return false;
  worker_gone(worker);
  return true;
}

void HeldRestart::worker_gone(ChildProcess* worker) {
  if (!restarting_) return;
  const size_t before = pending_.size();
  std::erase(pending_, worker);
  if (before > 0 && pending_.empty()) restart_when_held();
}

void HeldRestart::worker_started(ChildProcess* worker) {
  if (restarting_) worker->send_command(command("hold"), -1);
}

void HeldRestart::restart_when_held() {
  uv_timer_stop(&timer_);
  if (!restarting_ || !pending_.empty()) return;
  Service* service = options_.service();
  if (service == nullptr) {
    finish(Status::error(options_.what + " is gone"));
    return;
  }
  service->restart([this] { finish(Status::ok()); },
                   [this] { finish(Status::error(options_.what + " did not come back; see the log")); });
}

void HeldRestart::abort(Status why) {
  if (restarting_) finish(std::move(why));
}

void HeldRestart::finish(Status outcome) {
  restarting_ = false;
  pending_.clear();
  uv_timer_stop(&timer_);
  for (ChildProcess* w : options_.workers()) w->send_command(command("release"), -1);
  if (outcome) {
    Service* service = options_.service();
    spdlog::info("{} restarted (pid {}); workers send their held {} requests", options_.what,
                 service ? service->pid() : 0, options_.tier);
  } else {
    spdlog::error("{} restart: {}", options_.what, outcome.message());
  }
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& w : waiters) w(outcome);
}

}  // namespace rend::supervisor
