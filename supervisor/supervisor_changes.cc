// The supervisor's live changes: reload (validated, then workers rolled onto the new config),
// rolling restart, and scaling the number of worker slots.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "supervisor/supervisor.h"

namespace rend::supervisor {

// ---- reload, rolling restart, scale ---------------------------------------------------------------

Status Supervisor::reload() {
  if (stopping_) return Status::error("stopping");
  Config next;
  Status loaded =
      config_path_.empty() ? parse_config(nlohmann::json::object(), next) : load_config_file(config_path_, next);
  if (!loaded) {
    metrics_.reloads_failed++;
    return loaded;
  }
  if (const std::vector<std::string> changed = restart_only_changes(config_, next); !changed.empty()) {
    metrics_.reloads_failed++;
    return Status::error(
        fmt::format("{}: cannot change on reload (listening sockets, memcached and how L1 holds values, "
                    "rend-l2's identity, run_dir, control and metrics need a restart of rend); restart rend "
                    "to change {}",
                    fmt::join(changed, ", "), changed.size() == 1 ? "it" : "them"));
  }
  metrics_.reloads_ok++;
  if (notifier_) notifier_->reloading();
  config_ = std::move(next);
  // memcached's settings apply by a warm restart of memcached; the workers hold L1 meanwhile.
  if (memcached_ && memcached_->running() && memcached_argv() != memcached_running_argv_) {
    spdlog::info("reloading: memcached's command line changed; restarting it");
    l1_restart_.restart([](Status s) {
      if (!s) spdlog::error("reload: memcached restart failed: {}", s.message());
    });
  }
  spdlog::info("reloading: rolling {} workers onto the new config", config_.workers);
  ++roll_generation_;  // workers started from here on run the new config and are not rolled again
  for (auto& slot : slots_) {
    if (!slot->failed) continue;
    if (Status s = open_slot_socket(*slot); !s) {
      spdlog::error("worker {}: {}", slot->index, s.message());
      continue;
    }
    slot->failed = false;  // the new configuration gets its chance
    start_slot(*slot);
  }
  resize(config_.workers);
  queue_roll();
  when_settled([this] { notify_ready(); });
  return Status::ok();
}

void Supervisor::resize(int workers) {
  int active = 0;
  for (auto& s : slots_) active += s->retiring ? 0 : 1;
  while (active < workers) {
    auto slot = std::make_unique<Slot>();
    slot->owner = this;
    // Reuse the lowest free index so stats slots stay dense.
    int index = 0;
    while (std::any_of(slots_.begin(), slots_.end(), [&](const auto& s) { return s->index == index; })) ++index;
    slot->index = index;
    if (Status s = open_slot_socket(*slot); !s) {
      spdlog::error("scale: {}", s.message());
      return;
    }
    Slot& ref = *slot;
    slots_.push_back(std::move(slot));
    if (workers_started_) start_slot(ref);
    active++;
  }
  // All leaving slots are marked first, so none is chosen to take another's clients.
  std::vector<Slot*> leaving;
  for (auto it = slots_.rbegin(); it != slots_.rend() && active > workers; ++it) {
    Slot& s = **it;
    if (s.retiring) continue;
    s.retiring = true;
    active--;
    if (s.restart_timer != nullptr) uv_timer_stop(s.restart_timer);
    leaving.push_back(&s);
  }
  std::vector<Slot*> idle;  // restarting or failed: nothing to drain
  for (Slot* s : leaving) {
    if (s->worker) {
      // Its clients move to a worker that stays; it is removed once it has left (on_worker_exit).
      Slot* successor = successor_for(*s);
      if (successor == nullptr || !hand_clients_over(*s->worker, *successor->worker)) s->worker->kill(SIGTERM);
    } else if (s->replacement == nullptr) {
      idle.push_back(s);
    } else {
      s->replacement->kill(SIGTERM);  // a roll's replacement still starting: removed when it exits
    }
  }
  for (Slot* s : idle) remove_slot(*s);
}

bool Supervisor::hand_clients_over(ChildProcess& from, ChildProcess& to) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    spdlog::error("cannot create a handoff socket: {}; worker {} closes its clients instead", strerror(errno),
                  from.pid());
    return false;
  }
  // The receiver first: connections sent before it polls wait in the socket.
  const bool ok = to.send_command("take-over", pair[1]) && from.send_command("hand-off", pair[0]);
  close(pair[0]);
  close(pair[1]);
  if (ok) spdlog::info("worker pid {} hands its clients over to pid {}", from.pid(), to.pid());
  return ok;
}

Supervisor::Slot* Supervisor::successor_for(const Slot& leaving) {
  // Spread over the workers that stay, one leaving slot after another.
  std::vector<Slot*> staying;
  for (auto& s : slots_) {
    if (s.get() != &leaving && !s->retiring && s->worker && s->ready && s->worker->running())
      staying.push_back(s.get());
  }
  if (staying.empty()) return nullptr;
  return staying[static_cast<size_t>(leaving.index) % staying.size()];
}

void Supervisor::rolling_restart() {
  ++roll_generation_;
  queue_roll();
}

void Supervisor::queue_roll() {
  rolling_.clear();
  for (auto& s : slots_) {
    if (!s->retiring) rolling_.push_back(s->index);
  }
  if (!rolling_busy_) roll_next();
}

void Supervisor::roll_next() {
  while (!rolling_.empty() && !stopping_) {
    const int index = rolling_.front();
    rolling_.pop_front();
    auto it = std::find_if(slots_.begin(), slots_.end(), [&](const auto& s) { return s->index == index; });
    if (it == slots_.end() || (*it)->retiring) continue;
    Slot& slot = **it;
    // Not running (restart pending), or started since the roll began: it runs the new config.
    if (!slot.worker || slot.generation == roll_generation_) continue;
    rolling_busy_ = true;
    Slot* p = &slot;
    const uint64_t generation = roll_generation_;
    auto replacement = std::make_shared<std::unique_ptr<ChildProcess>>();
    Status s = spawn_worker(slot, *replacement, [this, p, replacement, generation] {
      // The new worker accepts on the slot's socket: now the old one can drain.
      std::unique_ptr<ChildProcess> old = std::move(p->worker);
      p->worker = std::move(*replacement);
      p->replacement = nullptr;
      p->generation = generation;
      p->ready = true;
      p->started_ms = uv_now(loop_);
      if (old) {
        spdlog::info("worker {} replaced: pid {} -> {}", p->index, old->pid(), p->worker->pid());
        if (!hand_clients_over(*old, *p->worker)) old->kill(SIGTERM);
        retire(std::move(old));
      } else {
        spdlog::info("worker {} started (pid {}) in place of one that died", p->index, p->worker->pid());
      }
    });
    if (s) slot.replacement = replacement->get();
    if (!s) {
      spdlog::error("rolling restart of worker {} failed: {}", index, s.message());
      rolling_busy_ = false;
      continue;
    }
    return;
  }
}

}  // namespace rend::supervisor
