#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/exit_codes.h"
#include "common/fd_limit.h"
#include "common/race_window.h"
#include "common/version.h"
#include "supervisor/listen_socket.h"

namespace rend::supervisor {

namespace {

constexpr uint64_t kHealthyRunMs = 10000;  // a child that ran this long is no longer crash-looping
constexpr int kCrashLoopReport = 5;

std::string describe_exit(int64_t status, int signal) {
  return signal != 0 ? fmt::format("signal {}", signal) : fmt::format("status {}", status);
}

uint64_t backoff_ms(const SupervisorConfig& c, int streak) {
  if (streak <= 1) return static_cast<uint64_t>(c.restart_backoff_min_ms);
  const uint64_t shifted = static_cast<uint64_t>(c.restart_backoff_min_ms) << std::min(streak - 1, 20);
  return std::min<uint64_t>(std::max<uint64_t>(shifted, 1), static_cast<uint64_t>(c.restart_backoff_max_ms));
}

}  // namespace

Supervisor::Supervisor(uv_loop_t* loop, std::string config_path, Config config)
    : loop_(loop),
      config_path_(std::move(config_path)),
      config_(std::move(config)),
      store_(loop),
      l1_restart_(loop, {"l1", "memcached", [this] { return memcached_.get(); }, [this] { return running_workers(); },
                         [this] { return static_cast<uint64_t>(config_.l1.timeout_ms) + 1000; }}),
      l2_restart_(loop, {"l2", "rend-l2", [this] { return l2_.get(); }, [this] { return running_workers(); },
                         [this] { return static_cast<uint64_t>(config_.l2.backend.timeout_ms) + 1000; }}) {
  // Where rend was started from: a package upgrade puts the new binary there.
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self_path_ = n > 0 ? std::string(self, static_cast<size_t>(n)) : "rend";
  if (self_path_.ends_with(" (deleted)")) self_path_.resize(self_path_.size() - std::string_view(" (deleted)").size());
}

Supervisor::~Supervisor() {
  for (auto& s : slots_) {
    if (s->tcp_fd >= 0) close(s->tcp_fd);
    if (s->batch_fd >= 0) close(s->batch_fd);
  }
  if (unix_fd_ >= 0) close(unix_fd_);
  for (int fd : {activated_.main_fd, activated_.batch_fd}) {
    if (fd >= 0) close(fd);
  }
  if (stats_fd_ >= 0) close(stats_fd_);
}

std::string sibling_binary(const std::string& name, const std::string& build_folder) {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return name;
  self[n] = '\0';
  const std::filesystem::path dir = std::filesystem::path(self).parent_path();
  for (const auto& candidate : {dir / name, dir / ".." / build_folder / name}) {
    if (access(candidate.c_str(), X_OK) == 0) return std::filesystem::weakly_canonical(candidate).string();
  }
  return name;
}

std::string Supervisor::worker_binary() const { return sibling_binary("rend-worker", "worker"); }

size_t Supervisor::free_stats_entry(const Slot& slot) const {
  for (size_t k = 0; k < kEntriesPerSlot; ++k) {
    if (slot.stats_owners[k] == nullptr) return k;
  }
  // Only when more processes of one slot are alive than it has entries (a roll of a roll of a
  // roll): two then share an entry, and its figures can be off until they exit.
  spdlog::warn("worker {}: {} of its processes are alive; two share a stats entry", slot.index, kEntriesPerSlot + 1);
  return kEntriesPerSlot - 1;
}

void Supervisor::release_stats_entry(Slot& slot, const ChildProcess* child) {
  for (size_t k = 0; k < kEntriesPerSlot; ++k) {
    if (slot.stats_owners[k] != child) continue;
    stats_.clear_gauges(static_cast<size_t>(slot.index), k);
    slot.stats_owners[k] = nullptr;
  }
}

void Supervisor::remove_slot(Slot& slot) {
  // Scaled down: the slot's socket goes away with its worker, and its gauges read zero (its
  // counters stay, so no Prometheus counter ever goes backwards).
  for (size_t k = 0; k < kEntriesPerSlot; ++k) stats_.clear_gauges(static_cast<size_t>(slot.index), k);
  close_slot_sockets(slot);
  if (slot.restart_timer != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(slot.restart_timer),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    slot.restart_timer = nullptr;
  }
  std::erase_if(slots_, [&](const auto& s) { return s.get() == &slot; });
}

void Supervisor::close_slot_sockets(Slot& slot) {
  for (int* fd : {&slot.tcp_fd, &slot.batch_fd}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

Status Supervisor::open_slot_socket(Slot& slot) {
  // A socket systemd holds is shared by every slot (a duplicate each); the others are the slot's own.
  auto open = [this](int activated, int port, int& fd) {
    if (activated < 0) return open_tcp_listener(config_.listen.host, port, config_.listen.backlog, fd);
    fd = fcntl(activated, F_DUPFD_CLOEXEC, 0);
    return fd >= 0 ? Status::ok() : Status::error(fmt::format("cannot duplicate a socket: {}", strerror(errno)));
  };
  Status s = open(activated_.main_fd, config_.listen.port, slot.tcp_fd);
  if (s && config_.l2.enabled && config_.listen.batch_port != 0) {
    s = open(activated_.batch_fd, config_.listen.batch_port, slot.batch_fd);
  }
  // Never half open: a socket no worker accepts on would take connections that then hang.
  if (!s) close_slot_sockets(slot);
  return s;
}

int Supervisor::run() {
  std::error_code ec;
  std::filesystem::create_directories(config_.run_dir, ec);
  if (ec) {
    spdlog::critical("cannot create run_dir {}: {}", config_.run_dir, ec.message());
    return 1;
  }
  // Children inherit the limit: workers raise theirs again for worker.max_connections (a reload
  // may raise it), memcached for its -c.
  log_fd_limit(raise_fd_limit(supervisor_descriptors(config_)), "rend", "the configuration");
  stats_fd_ = SharedStats::create(stats_);
  if (stats_fd_ < 0) {
    spdlog::critical("cannot create the shared stats block: {}", strerror(errno));
    return 1;
  }
  for (auto step : {&Supervisor::open_listeners, &Supervisor::open_endpoints}) {
    if (Status s = (this->*step)(); !s) {
      spdlog::critical("{}", s.message());
      return 1;
    }
  }
  log_start();
  install_handlers();
  notifier_ = std::make_unique<SystemdNotifier>(loop_);
  start_services();
  // Settled means every worker serves, and workers start only once memcached and rend-l2 answer.
  when_settled([this] {
    restore_stored_clients();
    notify_ready();
  });
  uv_run(loop_, UV_RUN_DEFAULT);
  return exit_code_;
}

Status Supervisor::open_listeners() {
  activated_ = ActivatedSockets::take(config_.listen.host, config_.listen.port,
                                      config_.l2.enabled ? config_.listen.batch_port : 0, config_.listen.unix_socket,
                                      [this](const std::string& name, int fd) { return store_.take(name, fd); });
  for (int port : {activated_.main_fd < 0 ? config_.listen.port : 0,
                   config_.l2.enabled && activated_.batch_fd < 0 ? config_.listen.batch_port : 0}) {
    if (port == 0) continue;
    if (Status s = ensure_port_free(config_.listen.host, port); !s) return s;
  }
  for (int i = 0; i < config_.workers; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->owner = this;
    slot->index = i;
    if (Status s = open_slot_socket(*slot); !s) return s;
    slots_.push_back(std::move(slot));
  }
  if (activated_.unix_fd >= 0) {
    unix_fd_ = activated_.unix_fd;
    activated_.unix_fd = -1;  // owned as unix_fd_ from here on
  } else if (!config_.listen.unix_socket.empty()) {
    unix_socket_bound_here_ = true;
    return open_unix_listener(config_.listen.unix_socket, config_.listen.backlog, unix_fd_);
  }
  return Status::ok();
}

Status Supervisor::open_endpoints() {
  started_ms_ = uv_now(loop_);
  if (!config_.metrics_listen.empty()) {
    exporter_ = std::make_unique<MetricsExporter>(stats_, metrics_);
    if (Status s = exporter_->start(config_.metrics_listen); !s) return s;
  }
  control_ = std::make_unique<ControlServer>(loop_, [this](const ControlRequest& request, ControlServer::Reply reply) {
    handle_control(request, std::move(reply));
  });
  return control_->start(config_.control_socket);
}

void Supervisor::log_start() const {
  spdlog::info("rend {} listening on {}:{}{} with {} workers; effective config: {}", kVersion, config_.listen.host,
               config_.listen.port, config_.listen.unix_socket.empty() ? "" : " and " + config_.listen.unix_socket,
               config_.workers, config_.effective.dump());
  if (config_.l2.enabled && config_.supervisor.stop_timeout_ms <= tier_race_window_ms(config_)) {
    // A stopping worker waits up to the race window for its pending L1 burials (worker/delayed_burials.h);
    // killed sooner, it loses them.
    spdlog::warn(
        "supervisor.stop_timeout_ms ({}) is not above the race window ({} ms, from the L1 and L2 "
        "timeouts): a worker stopped soon after a raced write may be killed before it buries its L1 copy",
        config_.supervisor.stop_timeout_ms, tier_race_window_ms(config_));
  }
}

void Supervisor::install_handlers() {
  uv_timer_init(loop_, &settle_timer_);
  settle_timer_.data = this;
  uv_signal_init(loop_, &sigterm_);
  uv_signal_init(loop_, &sigint_);
  uv_signal_init(loop_, &sighup_);
  uv_signal_init(loop_, &sigusr2_);
  uv_signal_init(loop_, &sigchld_);
  sigterm_.data = sigint_.data = sighup_.data = sigusr2_.data = this;
  uv_signal_start(
      &sigterm_, [](uv_signal_t* h, int) { static_cast<Supervisor*>(h->data)->stop(); }, SIGTERM);
  uv_signal_start(
      &sigint_, [](uv_signal_t* h, int) { static_cast<Supervisor*>(h->data)->stop(); }, SIGINT);
  uv_signal_start(
      &sighup_,
      [](uv_signal_t* h, int) {
        auto* self = static_cast<Supervisor*>(h->data);
        if (Status s = self->reload(); !s)
          spdlog::error("reload rejected, keeping the running config: {}", s.message());
      },
      SIGHUP);
  uv_signal_start(
      &sigusr2_,
      [](uv_signal_t* h, int) {
        static_cast<Supervisor*>(h->data)->upgrade([](Status) {}, -1);  // a failure is logged
      },
      SIGUSR2);
  uv_signal_start(
      &sigchld_, [](uv_signal_t*, int) { ChildProcess::reap_adopted(); }, SIGCHLD);
  uv_timer_init(loop_, &upgrade_timer_);
  upgrade_timer_.data = this;
  uv_idle_init(loop_, &exec_idle_);
  uv_check_init(loop_, &exec_check_);
  exec_check_.data = this;
  uv_timer_init(loop_, &stop_timer_);
  stop_timer_.data = this;
  uv_timer_init(loop_, &reap_timer_);
  reap_timer_.data = this;
  // Retired children are freed once libuv has closed their handles.
  uv_timer_start(
      &reap_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Supervisor*>(t->data);
        ChildProcess::reap_adopted();  // in case a SIGCHLD was missed
        std::erase_if(self->retired_, [](const auto& c) { return c->finished(); });
        std::erase_if(self->finished_checks_, [](const auto& c) { return c->finished(); });
      },
      1000, 1000);
}

// ---- workers -----------------------------------------------------------------------------------

void Supervisor::start_workers() {
  if (workers_started_) return;
  workers_started_ = true;
  for (auto& slot : slots_) start_slot(*slot);
}

Status Supervisor::spawn_worker(Slot& slot, std::unique_ptr<ChildProcess>& out, std::function<void()> on_ready) {
  std::vector<int> inherit = {stats_fd_, slot.tcp_fd};
  const size_t stats_entry = free_stats_entry(slot);
  std::vector<std::string> argv = {worker_binary(),
                                   "--slot",
                                   std::to_string(slot.index),
                                   "--stats-entry",
                                   std::to_string(stats_entry),
                                   "--config-json",
                                   config_.effective.dump(),
                                   "--stats-fd",
                                   "3",
                                   "--tcp-fd",
                                   "4"};
  if (slot.batch_fd >= 0) {
    inherit.push_back(slot.batch_fd);
    argv.push_back("--batch-fd");
    argv.push_back(std::to_string(2 + inherit.size()));
  }
  if (unix_fd_ >= 0) {
    inherit.push_back(unix_fd_);
    argv.push_back("--unix-fd");
    argv.push_back(std::to_string(2 + inherit.size()));
  }
  // The command socket: the supervisor tells the worker to hand its clients over, or to take
  // another's (worker/supervisor_channel.h).
  int commands[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, commands) != 0) {
    return Status::error(fmt::format("cannot create a command socket: {}", strerror(errno)));
  }
  fcntl(commands[0], F_SETFL, fcntl(commands[0], F_GETFL) | O_NONBLOCK);
  inherit.push_back(commands[1]);
  argv.push_back("--command-fd");
  argv.push_back(std::to_string(2 + inherit.size()));
  const int ready_fd = static_cast<int>(3 + inherit.size());
  argv.push_back("--ready-fd");
  argv.push_back(std::to_string(ready_fd));
  auto child = std::make_unique<ChildProcess>(loop_);
  ChildProcess* raw = child.get();
  Slot* slot_ptr = &slot;
  int got_ready_fd = -1;
  child->set_on_message([this, raw](std::string_view line) {
    if (!l1_restart_.on_message(raw, line)) l2_restart_.on_message(raw, line);
  });
  auto ready = [this, raw, on_ready = std::move(on_ready)] {
    // Started during a restart of memcached or rend-l2: it holds like the others until the end.
    l1_restart_.worker_started(raw);
    l2_restart_.worker_started(raw);
    on_ready();
  };
  Status s = child->spawn(
      argv, inherit, true, got_ready_fd, std::move(ready),
      [this, slot_ptr, raw](int64_t status, int signal) { on_worker_exit(*slot_ptr, raw, status, signal); });
  close(commands[1]);
  if (!s) {
    close(commands[0]);
    retire(std::move(child));
    return s;
  }
  child->set_command_socket(commands[0]);
  slot.stats_owners[stats_entry] = raw;
  out = std::move(child);
  return Status::ok();
}

void Supervisor::start_slot(Slot& slot) {
  if (stopping_ || slot.retiring) return;
  slot.ready = false;
  Slot* p = &slot;
  Status s = spawn_worker(slot, slot.worker, [p] { p->ready = true; });
  if (!s) {
    spdlog::error("worker {}: {}", slot.index, s.message());
    slot.crash_streak++;
    schedule_restart(slot);
    return;
  }
  slot.started_ms = uv_now(loop_);
  slot.generation = roll_generation_;
  update_up_gauges();
  spdlog::info("worker {} started (pid {})", slot.index, slot.worker->pid());
}

void Supervisor::on_worker_exit(Slot& slot, ChildProcess* child, int64_t status, int signal) {
  release_stats_entry(slot, child);
  l1_restart_.worker_gone(child);  // a worker that is gone holds nothing
  l2_restart_.worker_gone(child);
  if (slot.worker.get() != child) {
    // A replaced or retiring worker finished draining, or a roll's replacement died starting.
    if (slot.replacement == child) slot.replacement = nullptr;
    spdlog::info("worker {} (pid {}) stopped ({})", slot.index, child->pid(), describe_exit(status, signal));
    if (rolling_busy_) {
      rolling_busy_ = false;
      roll_next();
    }
    // Scaled down while its roll's replacement was starting, with no worker of its own left.
    if (slot.retiring && !slot.worker && slot.replacement == nullptr) remove_slot(slot);
    maybe_finish_stop();
    return;
  }
  retire(std::move(slot.worker));
  slot.ready = false;
  update_up_gauges();
  if (stopping_) {
    maybe_finish_stop();
    return;
  }
  if (slot.retiring) {
    remove_slot(slot);
    return;
  }
  if (signal == 0 && status == kExitBadConfig) {
    // Starting it again with the same configuration cannot help: report it and leave the slot
    // down. Its sockets close, so the kernel stops queueing connections where no worker accepts
    // them (the other slots take them); a reload reopens them with the new configuration.
    slot.failed = true;
    close_slot_sockets(slot);
    spdlog::critical(
        "worker {} (pid {}) cannot run with this configuration (see its message above); "
        "not restarting it until a reload",
        slot.index, child->pid());
    return;
  }
  slot.restarts++;
  metrics_.worker_restarts[slot.index]++;
  if (uv_now(loop_) - slot.started_ms > kHealthyRunMs) slot.crash_streak = 0;
  slot.crash_streak++;
  spdlog::warn("worker {} (pid {}) died ({}); restarting", slot.index, child->pid(), describe_exit(status, signal));
  schedule_restart(slot);
}

void Supervisor::schedule_restart(Slot& slot) {
  const uint64_t delay = backoff_ms(config_.supervisor, slot.crash_streak);
  if (slot.crash_streak >= kCrashLoopReport) {
    spdlog::error("worker {} is crash-looping ({} exits in a row); next try in {} ms", slot.index, slot.crash_streak,
                  delay);
  }
  if (slot.restart_timer == nullptr) {
    slot.restart_timer = new uv_timer_t;
    uv_timer_init(loop_, slot.restart_timer);
  }
  slot.restart_timer->data = &slot;
  uv_timer_start(
      slot.restart_timer,
      [](uv_timer_t* t) {
        auto* slot = static_cast<Slot*>(t->data);
        slot->owner->start_slot(*slot);
      },
      delay, 0);
}

void Supervisor::retire(std::unique_ptr<ChildProcess> child) {
  if (child) retired_.push_back(std::move(child));
}

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

void Supervisor::update_up_gauges() {
  int64_t up = 0;
  for (auto& s : slots_) {
    metrics_.slots_in_use[s->index] = 1;
    if (s->worker && s->worker->running()) up++;
  }
  metrics_.workers_up = up;
}

}  // namespace rend::supervisor
