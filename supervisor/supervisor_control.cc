// The supervisor's answers to control commands (rendctl): status, reload, restart,
// restart-worker, scale, restart-memcached, restart-l2, upgrade, stop, version.
#include <fcntl.h>
#include <fmt/format.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <string_view>

#include "common/version.h"
#include "supervisor/supervisor.h"

namespace rend::supervisor {

using nlohmann::json;

namespace {
constexpr uint64_t kSettleCheckMs = 20;

json failure(const std::string& message) { return {{"ok", false}, {"error", message}}; }

// Linux marks the link to a running program's executable " (deleted)" once that file is unlinked or
// renamed over, which is how dpkg installs a new version.
bool executable_replaced(int pid) {
  char target[PATH_MAX + 16];
  const ssize_t n = readlink(fmt::format("/proc/{}/exe", pid).c_str(), target, sizeof(target) - 1);
  return n > 0 && std::string_view(target, static_cast<size_t>(n)).ends_with(" (deleted)");
}
}  // namespace

bool Supervisor::settled() const {
  if (!rolling_.empty() || rolling_busy_ || l1_restart_.restarting() || l2_restart_.restarting()) return false;
  for (const auto& s : slots_) {
    if (s->failed) continue;  // down until a reload: nothing is on its way
    if (s->retiring || !s->worker || !s->ready) return false;
  }
  return true;
}

void Supervisor::when_settled(std::function<void()> done) {
  settle_waiters_.push_back(std::move(done));
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&settle_timer_))) {
    uv_timer_start(
        &settle_timer_, [](uv_timer_t* t) { static_cast<Supervisor*>(t->data)->check_settled(); }, kSettleCheckMs,
        kSettleCheckMs);
  }
}

void Supervisor::notify_ready() {
  if (stopping_ || !notifier_) return;
  int serving = 0;
  for (const auto& slot : slots_) serving += slot->ready && !slot->retiring ? 1 : 0;
  // Settled with every worker left down (a config they cannot use) is not ready: systemd then
  // fails the start after TimeoutStartSec instead of calling a service that serves nothing up.
  if (serving == 0) {
    notifier_->status("no worker serving: see rend's log");
    return;
  }
  notifier_->ready(fmt::format("serving on port {} with {} workers", config_.listen.port, serving));
}

void Supervisor::check_settled() {
  if (!settled() && !stopping_) return;
  uv_timer_stop(&settle_timer_);
  std::vector<std::function<void()>> waiters;
  waiters.swap(settle_waiters_);
  for (auto& w : waiters) w();
}

json Supervisor::replaced_executables() const {
  json replaced = json::array();
  auto check = [&replaced](int pid, const std::string& name) {
    if (pid > 0 && executable_replaced(pid)) replaced.push_back(name);
  };
  check(getpid(), "rend");
  for (const auto& s : slots_) check(s->worker ? s->worker->pid() : 0, fmt::format("rend-worker {}", s->index));
  if (memcached_) check(memcached_->pid(), "memcached");
  if (l2_) check(l2_->pid(), "rend-l2");
  return replaced;
}

json Supervisor::status() const {
  const uint64_t now = uv_now(loop_);
  json workers = json::array();
  for (const auto& s : slots_) {
    std::string state = s->retiring  ? "retiring"
                        : s->failed  ? "failed"
                        : !s->worker ? "restarting"
                        : s->ready   ? "ready"
                                     : "starting";
    workers.push_back({
        {"slot", s->index},
        {"pid", s->worker ? s->worker->pid() : 0},
        {"state", state},
        {"uptime_s", s->worker ? (now - s->started_ms) / 1000 : 0},
        {"connections", stats_.value(static_cast<size_t>(s->index), Counter::curr_connections)},
        {"restarts", s->restarts},
    });
  }
  json out = {
      {"ok", true},
      {"supervisor",
       {{"pid", getpid()},
        {"version", kVersion},
        {"uptime_s", (now - started_ms_) / 1000},
        {"config_file", config_path_},
        {"executable", self_path_},
        {"config_hash", config_hash(config_)},
        {"restart_hash", restart_hash(config_)},
        {"replaced_executables", replaced_executables()},
        {"state", stopping_    ? "stopping"
                  : upgrading_ ? "upgrading"
                  : settled()  ? "running"
                               : "changing"}}},
      {"workers", workers},
  };
  auto service = [](const Service& s) {
    return json{{"pid", s.pid()},
                {"state", s.running()  ? "running"
                          : s.failed() ? "failed"
                                       : "restarting"},
                {"restarts", s.restarts()}};
  };
  if (memcached_) out["memcached"] = service(*memcached_);
  if (l2_) out["l2"] = service(*l2_);
  return out;
}

void Supervisor::handle_control(const ControlRequest& request, ControlServer::Reply reply) {
  const std::string& cmd = request.cmd;
  if (stopping_ && cmd != "status" && cmd != "version") {
    reply(failure("rend is stopping"));
    return;
  }
  if (cmd == "status") {
    reply(status());
  } else if (cmd == "version") {
    reply({{"ok", true}, {"version", kVersion}, {"protocol", kProtocolVersion}});
  } else if (cmd == "reload") {
    if (Status s = reload(); !s) {
      spdlog::error("reload rejected, keeping the running config: {}", s.message());
      reply(failure(s.message()));
      return;
    }
    when_settled([this, reply] {
      reply({{"ok", true}, {"workers", slots_.size()}, {"config_hash", config_hash(config_)}});
    });
  } else if (cmd == "restart") {
    spdlog::info("rolling restart requested");
    rolling_restart();
    when_settled([this, reply] { reply({{"ok", true}, {"workers", slots_.size()}}); });
  } else if (cmd == "restart-memcached") {
    spdlog::info("restart of memcached requested");
    l1_restart_.restart([reply](Status s) { reply(s ? nlohmann::json{{"ok", true}} : failure(s.message())); });
  } else if (cmd == "restart-l2") {
    spdlog::info("restart of rend-l2 requested");
    l2_restart_.restart([reply](Status s) { reply(s ? nlohmann::json{{"ok", true}} : failure(s.message())); });
  } else if (cmd == "upgrade") {
    // The answer comes from the next image, on a duplicate of this connection that survives the exec.
    const int reply_fd = request.connection_fd >= 0 ? fcntl(request.connection_fd, F_DUPFD_CLOEXEC, 0) : -1;
    upgrade([reply](Status s) { reply(s ? nlohmann::json{{"ok", true}} : failure(s.message())); }, reply_fd);
  } else if (cmd == "restart-worker") {
    const int slot = request.slot;
    const bool exists =
        std::any_of(slots_.begin(), slots_.end(), [&](const auto& s) { return s->index == slot && !s->retiring; });
    if (!exists) {
      reply(failure(fmt::format("no worker in slot {}", slot)));
      return;
    }
    spdlog::info("restart of worker {} requested", slot);
    ++roll_generation_;  // a worker started by the last roll is replaced too: it was asked for
    rolling_.push_back(slot);
    if (!rolling_busy_) roll_next();
    when_settled([reply] { reply({{"ok", true}}); });
  } else if (cmd == "scale") {
    const int n = request.workers;
    if (n < 1 || n > static_cast<int>(kMaxWorkerSlots)) {
      reply(failure(fmt::format("workers: must be between 1 and {} (got {})", kMaxWorkerSlots, n)));
      return;
    }
    spdlog::info("scaling to {} workers", n);
    config_.workers = n;
    config_.effective["workers"] = n;
    resize(n);
    when_settled([reply, n] { reply({{"ok", true}, {"workers", n}}); });
  } else if (cmd == "stop") {
    reply({{"ok", true}});
    stop();
  } else {
    reply(failure(fmt::format("unknown command '{}'", cmd)));
  }
}

}  // namespace rend::supervisor
