// In-place upgrade of the supervisor (rendctl upgrade, SIGUSR2), as nginx does it but keeping the
// pid, so systemd sees no restart:
//
//   1. Once nothing else is changing, the binary now at rend's path runs as a child with this
//      supervisor's state (--check-upgrade): it must start, read the state and map the shared stats
//      block. A binary that fails this is never executed; this image goes on and says why.
//   2. This image writes its state to a memfd (upgrade_state.h), clears FD_CLOEXEC on every
//      descriptor it names, opens its own executable for a way back, blocks the signals it handles
//      and executes the new binary with --resume-fd.
//   3. The new image adopts it all: listening sockets, control socket, stats block, memcached,
//      rend-l2 and the workers (ChildProcess::adopt), then rolls the workers onto its rend-worker,
//      each handing its clients to its successor (worker/connection_handoff.h), and answers rendctl.
//      If it cannot take the state over, it executes the previous binary again with the state.
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "common/logging.h"
#include "common/uv_loop_close.h"
#include "common/version.h"
#include "supervisor/supervisor.h"

namespace rend::supervisor {

namespace {

constexpr uint64_t kCheckTimeoutMs = 15000;
// How long an upgrade waits for a roll, a scale or a worker restart in progress to finish.
constexpr uint64_t kSettleWaitMs = 30000;
constexpr uint64_t kSettlePollMs = 20;
// The signals the supervisor handles: blocked across the exec, so one that arrives before the next
// image has its handlers waits for them instead of killing rend.
constexpr int kHandledSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR2};

void block_handled_signals(int how) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kHandledSignals) sigaddset(&set, s);
  pthread_sigmask(how, &set, nullptr);
}

void set_cloexec(const std::vector<int>& fds, bool on) {
  for (int fd : fds) {
    const int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
  }
}

std::vector<std::string> resume_argv(const std::string& binary, const std::string& config_path, int state_fd) {
  std::vector<std::string> argv = {binary, "--resume-fd", std::to_string(state_fd)};
  if (!config_path.empty()) argv.insert(argv.end(), {"--config", config_path});
  return argv;
}

std::vector<char*> c_argv(std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (auto& a : argv) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

nlohmann::json failure(const std::string& message) { return {{"ok", false}, {"error", message}}; }

}  // namespace

// ---- the image being replaced -----------------------------------------------------------------

void Supervisor::upgrade(std::function<void(Status)> done, int reply_fd) {
  if (upgrading_) {
    if (reply_fd >= 0) close(reply_fd);
    done(Status::error("an upgrade is in progress"));
    return;
  }
  upgrading_ = true;
  upgrade_done_ = std::move(done);
  upgrade_reply_fd_ = reply_fd;
  upgrade_deadline_ms_ = uv_now(loop_) + kSettleWaitMs;
  spdlog::info("upgrade requested: {} once nothing else is changing", self_path_);
  uv_timer_start(
      &upgrade_timer_, [](uv_timer_t* t) { static_cast<Supervisor*>(t->data)->upgrade_when_settled(); }, 0,
      kSettlePollMs);
}

void Supervisor::upgrade_when_settled() {
  if (!stopping_ && !settled() && uv_now(loop_) < upgrade_deadline_ms_) return;
  uv_timer_stop(&upgrade_timer_);
  if (stopping_) {
    finish_upgrade(Status::error("rend is stopping"));
    return;
  }
  if (!settled()) {
    finish_upgrade(Status::error(
        fmt::format("rend is still changing after {} s (a roll, a scale, or a worker restarting: see rendctl status)",
                    kSettleWaitMs / 1000)));
    return;
  }
  if (Status s = ready_to_exec(); !s) {
    finish_upgrade(s);
    return;
  }
  check_new_binary();
}

Status Supervisor::ready_to_exec() const {
  if (stopping_) return Status::error("rend is stopping");
  if (!settled()) return Status::error("rend changed during the upgrade (a worker died?); try again");
  for (const Service* s : {memcached_.get(), l2_.get()}) {
    // Only a running child can be adopted; one between restarts would be lost between images.
    if (s != nullptr && !s->running()) {
      return Status::error("memcached or rend-l2 is not running (see rendctl status); try again once it is");
    }
  }
  return Status::ok();
}

void Supervisor::finish_upgrade(Status outcome) {
  upgrading_ = false;
  for (int* fd : {&upgrade_reply_fd_, &upgrade_exe_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  if (!outcome) {
    metrics_.upgrades_failed++;
    spdlog::error("upgrade not done, this rend goes on: {}", outcome.message());
  }
  auto done = std::move(upgrade_done_);
  upgrade_done_ = nullptr;
  if (done) done(outcome);
}

void Supervisor::check_new_binary() {
  // The binary is opened once: the one checked is the one executed, whatever replaces the file
  // meanwhile.
  upgrade_exe_fd_ = open(self_path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (upgrade_exe_fd_ < 0) {
    finish_upgrade(Status::error(fmt::format("cannot open {}: {}", self_path_, strerror(errno))));
    return;
  }
  int state_fd = -1;
  if (Status s = write_upgrade_state(capture_state(-1), state_fd); !s) {
    finish_upgrade(s);
    return;
  }
  upgrade_check_ = std::make_unique<ChildProcess>(loop_);
  int unused = -1;
  auto on_exit = [this](int64_t status, int signal) {
    uv_timer_stop(&upgrade_timer_);
    finished_checks_.push_back(std::move(upgrade_check_));
    std::erase_if(finished_checks_, [](const auto& c) { return c->finished(); });
    if (signal != 0 || status != 0) {
      finish_upgrade(Status::error(
          fmt::format("the new binary {} failed its check ({}; its message is in rend's log)", self_path_,
                      signal != 0 ? fmt::format("signal {}", signal) : fmt::format("exit status {}", status))));
      return;
    }
    if (Status s = ready_to_exec(); !s) {
      finish_upgrade(s);
      return;
    }
    exec_after_a_quiet_turn();
  };
  // The child runs the opened file, inherited as its fd 5 (an interpreted file needs it open).
  Status s = upgrade_check_->spawn({"/proc/self/fd/5", "--check-upgrade", "3", "--check-stats-fd", "4"},
                                   {state_fd, stats_fd_, upgrade_exe_fd_}, false, unused, nullptr, std::move(on_exit));
  close(state_fd);
  if (!s) {
    finished_checks_.push_back(std::move(upgrade_check_));
    finish_upgrade(s);
    return;
  }
  uv_timer_start(
      &upgrade_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Supervisor*>(t->data);
        spdlog::error("the new binary's check did not finish in {} s; killing it", kCheckTimeoutMs / 1000);
        if (self->upgrade_check_) self->upgrade_check_->kill(SIGKILL);
      },
      kCheckTimeoutMs, 0);
}

void Supervisor::exec_after_a_quiet_turn() {
  // A signal caught before it was blocked waits in the loop's signal pipe: one more turn of the
  // loop (not waiting: the idle handle) hands it to its handler, and a stop then cancels the exec.
  // One that comes later stays pending across the exec, for the next image's handlers.
  block_handled_signals(SIG_BLOCK);
  exec_turns_ = 0;
  uv_idle_start(&exec_idle_, [](uv_idle_t*) {});
  uv_check_start(&exec_check_, [](uv_check_t* h) {
    auto* self = static_cast<Supervisor*>(h->data);
    if (++self->exec_turns_ < 2) return;
    uv_idle_stop(&self->exec_idle_);
    uv_check_stop(&self->exec_check_);
    if (Status s = self->ready_to_exec(); !s) {
      block_handled_signals(SIG_UNBLOCK);
      self->finish_upgrade(s);
      return;
    }
    self->check_settled();  // whoever waits for rend to settle is answered by this image
    self->finish_upgrade(self->exec_next_image(self->upgrade_reply_fd_));  // returns only if it failed
  });
}

UpgradeState Supervisor::capture_state(int reply_fd) const {
  UpgradeState state;
  state.config_path = config_path_;
  state.config = config_.effective;
  state.started_ms = started_ms_;
  state.roll_generation = roll_generation_;
  state.stats_fd = stats_fd_;
  state.unix_fd = unix_fd_;
  state.unix_bound_here = unix_socket_bound_here_;
  state.activated_main_fd = activated_.main_fd;
  state.activated_batch_fd = activated_.batch_fd;
  state.control_fd = control_ ? control_->listen_fd() : -1;
  state.reply_fd = reply_fd;
  for (const auto& slot : slots_) {
    state.slots.push_back({slot->index, slot->tcp_fd, slot->batch_fd, slot->restarts, slot->crash_streak, slot->failed,
                           slot->generation, slot->started_ms});
    for (size_t k = 0; k < kEntriesPerSlot; ++k) {
      const ChildProcess* c = slot->stats_owners[k];
      if (c == nullptr || !c->running()) continue;
      state.workers.push_back(
          {slot->index, c->pid(), c->ready_pipe_fd(), c->command_fd(), static_cast<int>(k), c == slot->worker.get()});
    }
  }
  if (memcached_) state.memcached = {memcached_->pid(), memcached_->restarts()};
  state.memcached_argv = memcached_running_argv_;
  state.memcached_warm = memcached_started_warm_;
  if (l2_) state.l2 = {l2_->pid(), l2_->restarts()};
  for (const auto& r : metrics_.worker_restarts) state.worker_restarts.push_back(r.load());
  state.memcached_restarts = metrics_.memcached_restarts.load();
  state.l2_restarts = metrics_.l2_restarts.load();
  state.reloads_ok = metrics_.reloads_ok.load();
  state.reloads_failed = metrics_.reloads_failed.load();
  state.upgrades_ok = metrics_.upgrades_ok.load();
  state.upgrades_failed = metrics_.upgrades_failed.load();
  return state;
}

Status Supervisor::exec_next_image(int reply_fd) {
  UpgradeState state = capture_state(reply_fd);
  // The way back: this image's executable, even once its file has been replaced or removed.
  state.fallback_exe_fd = open("/proc/self/exe", O_RDONLY);
  state.exec_fd = upgrade_exe_fd_;
  int state_fd = -1;
  if (Status s = write_upgrade_state(state, state_fd); !s) {
    if (state.fallback_exe_fd >= 0) close(state.fallback_exe_fd);
    block_handled_signals(SIG_UNBLOCK);
    return s;
  }
  const std::vector<int> kept = state.descriptors();
  spdlog::info("upgrade: executing {} in place (pid {})", self_path_, getpid());
  if (notifier_) notifier_->reloading();
  // The metrics exporter is left running: civetweb's sockets are close-on-exec and its threads end
  // with the exec, so the next image binds the port again at once (stopping it first takes a second).
  set_cloexec(kept, false);
  set_cloexec({upgrade_exe_fd_}, false);  // an interpreted file is read through it after the exec
  spdlog::default_logger()->flush();
  std::vector<std::string> argv = resume_argv(self_path_, config_path_, state_fd);
  fexecve(upgrade_exe_fd_, c_argv(argv).data(), environ);
  // Still here: the exec failed, and this image goes on as it was.
  const int err = errno;
  block_handled_signals(SIG_UNBLOCK);
  set_cloexec(kept, true);
  set_cloexec({upgrade_exe_fd_}, true);
  close(state_fd);
  if (state.fallback_exe_fd >= 0) close(state.fallback_exe_fd);
  when_settled([this] { notify_ready(); });
  return Status::error(fmt::format("cannot execute {}: {}", self_path_, strerror(err)));
}

// ---- the next image ---------------------------------------------------------------------------

namespace {

// This image cannot go on with the state: the previous binary takes it back (--upgrade-failed
// tells it why; the state is as it wrote it). Without a way back (the fall back itself failed, or
// the state does not say), the children are stopped so that a restart of rend by its service
// manager finds the ports free.
[[noreturn]] void fall_back_to_previous(const UpgradeState& state, int state_fd, const std::string& why) {
  spdlog::critical("upgrade: this binary cannot take over ({}); going back to the previous one", why);
  if (state.failed_upgrade.empty() && state.fallback_exe_fd >= 0) {
    std::vector<std::string> argv = resume_argv("rend", state.config_path, state_fd);
    argv.insert(argv.end(), {"--upgrade-failed", why});
    spdlog::default_logger()->flush();
    fexecve(state.fallback_exe_fd, c_argv(argv).data(), environ);
    spdlog::critical("cannot execute the previous binary again: {}", strerror(errno));
  }
  spdlog::critical("stopping rend's children; rend exits");
  for (const auto& w : state.workers) {
    if (is_own_child(w.pid)) kill(w.pid, SIGTERM);
  }
  if (is_own_child(state.l2.pid)) kill(state.l2.pid, SIGTERM);
  if (is_own_child(state.memcached.pid)) kill(state.memcached.pid, state.memcached_warm ? SIGUSR1 : SIGTERM);
  spdlog::default_logger()->flush();
  _exit(1);
}

}  // namespace

int resume_supervisor(int state_fd, const std::string& failed_upgrade) {
  UpgradeState state;
  if (Status s = read_upgrade_state(state_fd, state); !s) {
    // Written by a binary whose state this one cannot read: only the way back is taken from it.
    state = UpgradeState{};
    state.fallback_exe_fd = fallback_exe_of(state_fd);
    state.failed_upgrade = failed_upgrade;
    fall_back_to_previous(state, state_fd, s.message());
  }
  state.failed_upgrade = failed_upgrade;
  Config config;
  if (Status s = parse_config(state.config, config); !s) fall_back_to_previous(state, state_fd, s.message());
  init_logging("rend", config.log_level);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc;
  {
    Supervisor supervisor(&loop, state.config_path, std::move(config));
    rc = supervisor.resume(std::move(state), state_fd);
    close_loop(&loop);
  }
  return rc;
}

namespace {

// What check_upgrade_state cannot know: slots and stats entries this binary can address.
Status check_slots(const UpgradeState& state) {
  for (const auto& s : state.slots) {
    if (s.index < 0 || s.index >= static_cast<int>(kMaxWorkerSlots)) {
      return Status::error(fmt::format("slot {} is out of range", s.index));
    }
  }
  for (const auto& w : state.workers) {
    if (w.stats_entry < 0 || w.stats_entry >= static_cast<int>(kEntriesPerSlot) ||
        std::none_of(state.slots.begin(), state.slots.end(), [&](const auto& s) { return s.index == w.slot; })) {
      return Status::error(fmt::format("worker pid {} has no slot or stats entry", w.pid));
    }
  }
  return Status::ok();
}

}  // namespace

int Supervisor::resume(UpgradeState state, int state_fd) {
  Status usable = check_upgrade_state(state);
  if (usable) usable = check_slots(state);
  if (usable && !SharedStats::attach(state.stats_fd, stats_)) {
    usable = Status::error(
        "the shared stats block has another layout than this binary's (a restart of rend is "
        "needed to change it)");
  }
  if (!usable) fall_back_to_previous(state, state_fd, usable.message());
  // From here on this image owns it all.
  const bool fell_back = !state.failed_upgrade.empty();
  set_cloexec(state.descriptors(), true);
  for (int fd : {state.fallback_exe_fd, state.exec_fd}) {
    if (fd >= 0) close(fd);
  }
  close(state_fd);
  take_over(state);
  install_handlers();
  notifier_ = std::make_unique<SystemdNotifier>(loop_);
  adopt_services(state);
  adopt_workers(state);
  workers_started_ = true;
  update_up_gauges();
  block_handled_signals(SIG_UNBLOCK);
  ChildProcess::reap_adopted();  // children that exited during the exec
  ControlServer::Reply reply = [](const nlohmann::json&) {};
  if (state.reply_fd >= 0) reply = control_->adopt_connection(state.reply_fd);
  if (fell_back) {
    metrics_.upgrades_failed++;
    spdlog::error("upgrade failed, running the previous binary again (pid {}): {}", getpid(), state.failed_upgrade);
    reply(failure(
        fmt::format("the new binary could not take over, rend runs the previous one again: {}", state.failed_upgrade)));
  } else {
    metrics_.upgrades_ok++;
    spdlog::info("rend {} took over in place (pid {}); rolling the workers onto {}", kVersion, getpid(),
                 worker_binary());
    rolling_restart();
    when_settled([this, reply] {
      reply({{"ok", true}, {"pid", getpid()}, {"version", kVersion}, {"workers", slots_.size()}});
    });
  }
  when_settled([this] { notify_ready(); });
  uv_run(loop_, UV_RUN_DEFAULT);
  return exit_code_;
}

void Supervisor::take_over(const UpgradeState& state) {
  stats_fd_ = state.stats_fd;
  unix_fd_ = state.unix_fd;
  unix_socket_bound_here_ = state.unix_bound_here;
  activated_.main_fd = state.activated_main_fd;
  activated_.batch_fd = state.activated_batch_fd;
  started_ms_ = state.started_ms;
  roll_generation_ = state.roll_generation;
  for (size_t i = 0; i < state.worker_restarts.size() && i < kMaxWorkerSlots; ++i) {
    metrics_.worker_restarts[i] = state.worker_restarts[i];
  }
  metrics_.memcached_restarts = state.memcached_restarts;
  metrics_.l2_restarts = state.l2_restarts;
  metrics_.reloads_ok = state.reloads_ok;
  metrics_.reloads_failed = state.reloads_failed;
  metrics_.upgrades_ok = state.upgrades_ok;
  metrics_.upgrades_failed = state.upgrades_failed;
  for (const auto& s : state.slots) {
    auto slot = std::make_unique<Slot>();
    slot->owner = this;
    slot->index = s.index;
    slot->tcp_fd = s.tcp_fd;
    slot->batch_fd = s.batch_fd;
    slot->restarts = s.restarts;
    slot->crash_streak = s.crash_streak;
    slot->failed = s.failed;
    slot->generation = s.generation;
    slot->started_ms = s.started_ms;
    slots_.push_back(std::move(slot));
  }
  if (!config_.metrics_listen.empty()) {
    exporter_ = std::make_unique<MetricsExporter>(stats_, metrics_);
    if (Status s = exporter_->start(config_.metrics_listen); !s) spdlog::error("metrics: {}", s.message());
  }
  control_ = std::make_unique<ControlServer>(loop_, [this](const ControlRequest& request, ControlServer::Reply reply) {
    handle_control(request, std::move(reply));
  });
  if (Status s = control_->adopt(config_.control_socket, state.control_fd); !s) spdlog::error("{}", s.message());
}

void Supervisor::adopt_services(const UpgradeState& state) {
  create_services();
  // A service that was not running (the previous image checks it was) is started as at a start.
  if (memcached_ && state.memcached.pid > 0) {
    memcached_running_argv_ = state.memcached_argv;
    memcached_started_warm_ = state.memcached_warm;
    memcached_->adopt(state.memcached.pid, state.memcached.restarts);
  } else if (memcached_) {
    memcached_->start([] {});
  }
  if (l2_ && state.l2.pid > 0) {
    l2_->adopt(state.l2.pid, state.l2.restarts);
  } else if (l2_) {
    l2_->start([] {});
  }
}

void Supervisor::adopt_workers(const UpgradeState& state) {
  for (const AdoptedWorker& w : state.workers) {
    auto it = std::find_if(slots_.begin(), slots_.end(), [&](const auto& s) { return s->index == w.slot; });
    Slot& slot = **it;  // checked in resume
    auto child = std::make_unique<ChildProcess>(loop_);
    ChildProcess* raw = child.get();
    Slot* slot_ptr = &slot;
    child->set_on_message([this, raw](std::string_view line) {
      if (!l1_restart_.on_message(raw, line)) l2_restart_.on_message(raw, line);
    });
    Status s = child->adopt(w.pid, w.ready_fd, w.command_fd, [this, slot_ptr, raw](int64_t status, int signal) {
      on_worker_exit(*slot_ptr, raw, status, signal);
    });
    if (!s) spdlog::error("worker {}: {}", w.slot, s.message());
    slot.stats_owners[static_cast<size_t>(w.stats_entry)] = raw;
    if (w.current && !slot.worker) {
      slot.worker = std::move(child);
      slot.ready = true;
    } else {
      retire(std::move(child));
    }
  }
}

}  // namespace rend::supervisor
