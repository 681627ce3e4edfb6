#include "supervisor/service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace rend::supervisor {

namespace {

constexpr uint64_t kHealthyRunMs = 10000;  // a child that ran this long is no longer crash-looping
constexpr int kCrashLoopReport = 5;
constexpr int kReadyPolls = 500;  // x 20 ms

bool unix_socket_accepts(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

}  // namespace

Service::Service(uv_loop_t* loop, Options options) : loop_(loop), options_(std::move(options)) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

Service::~Service() = default;

void Service::start(std::function<void()> on_first_ready) {
  on_first_ready_ = std::move(on_first_ready);
  const uint64_t delay = options_.start_delay_ms ? options_.start_delay_ms() : 0;
  if (delay == 0) {
    spawn();
    return;
  }
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<Service*>(t->data)->spawn(); }, delay, 0);
}

void Service::spawn() {
  if (stopping_) return;
  const std::vector<std::string> argv = options_.argv();
  auto child = std::make_unique<ChildProcess>(loop_);
  ChildProcess* raw = child.get();
  int unused = -1;
  Status s = child->spawn(argv, options_.inherit, false, unused, nullptr, [this, raw](int64_t status, int signal) {
    if (child_.get() == raw) on_exit(status, signal);
  });
  if (!s) {
    spdlog::error("{}: {}", options_.name, s.message());
    retired_.push_back(std::move(child));
    on_exit(127, 0);
    return;
  }
  child_ = std::move(child);
  started_ms_ = uv_now(loop_);
  if (options_.up_metric != nullptr) *options_.up_metric = 1;
  spdlog::info("{} started (pid {})", options_.name, child_->pid());
  if (on_first_ready_) poll_ready(kReadyPolls);
}

void Service::adopt(int pid, int restarts) {
  auto child = std::make_unique<ChildProcess>(loop_);
  ChildProcess* raw = child.get();
  Status s = child->adopt(pid, -1, -1, [this, raw](int64_t status, int signal) {
    if (child_.get() == raw) on_exit(status, signal);
  });
  if (!s) spdlog::error("{}: {}", options_.name, s.message());  // cannot happen without a ready pipe
  child_ = std::move(child);
  restarts_ = restarts;
  started_ms_ = uv_now(loop_);
  if (options_.up_metric != nullptr) *options_.up_metric = 1;
  spdlog::info("{} adopted (pid {})", options_.name, pid);
}

void Service::poll_ready(int attempts_left) {
  if (stopping_ || !on_first_ready_) return;
  if (unix_socket_accepts(options_.socket_path) || attempts_left <= 0) {
    if (attempts_left <= 0)
      spdlog::warn("{} is not answering on {} yet; going on", options_.name, options_.socket_path);
    auto ready = std::move(on_first_ready_);
    on_first_ready_ = nullptr;
    ready();
    return;
  }
  ready_attempts_ = attempts_left - 1;
  uv_timer_start(
      &timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Service*>(t->data);
        self->poll_ready(self->ready_attempts_);
      },
      20, 0);
}

void Service::on_exit(int64_t status, int signal) {
  if (child_) retired_.push_back(std::move(child_));
  std::erase_if(retired_, [](const auto& c) { return c->finished(); });
  if (options_.up_metric != nullptr) *options_.up_metric = 0;
  if (restarting_ && !stopping_) {
    restarting_ = false;
    const uint64_t delay = options_.start_delay_ms ? options_.start_delay_ms() : 0;
    spdlog::info("{} stopped for its restart ({}); starting it again in {} ms", options_.name,
                 signal != 0 ? fmt::format("signal {}", signal) : fmt::format("status {}", status), delay);
    uv_timer_start(
        &timer_, [](uv_timer_t* t) { static_cast<Service*>(t->data)->spawn(); }, delay, 0);
    return;
  }
  if (on_restart_failed_ && on_first_ready_) {
    // The restarted one died before it accepted: the restart failed; restarts go on as usual.
    on_first_ready_ = nullptr;
    auto failed = std::move(on_restart_failed_);
    on_restart_failed_ = nullptr;
    failed();
  }
  if (stopping_) {
    if (on_stopped_) {
      auto done = std::move(on_stopped_);
      on_stopped_ = nullptr;
      done();
    }
    return;
  }
  if (signal == 0 && status == options_.fatal_status) {
    failed_ = true;
    spdlog::critical(
        "{} exited with status {}: it cannot run with this configuration (see its message above); "
        "not restarting it until rend restarts",
        options_.name, status);
    return;
  }
  restarts_++;
  if (options_.restarts_metric != nullptr) (*options_.restarts_metric)++;
  if (uv_now(loop_) - started_ms_ > kHealthyRunMs) streak_ = 0;
  streak_++;
  const auto& b = options_.backoff;
  uint64_t delay = static_cast<uint64_t>(b.restart_backoff_min_ms);
  if (streak_ > 1) {
    delay = std::min<uint64_t>(std::max<uint64_t>(delay << std::min(streak_ - 1, 20), 1),
                               static_cast<uint64_t>(b.restart_backoff_max_ms));
  }
  const std::string how = signal != 0 ? fmt::format("signal {}", signal) : fmt::format("status {}", status);
  if (streak_ >= kCrashLoopReport) {
    spdlog::error("{} is crash-looping ({} exits in a row, last: {}); next try in {} ms", options_.name, streak_, how,
                  delay);
  } else {
    spdlog::warn("{} exited ({}); restarting in {} ms", options_.name, how, delay);
  }
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<Service*>(t->data)->spawn(); }, delay, 0);
}

void Service::stop(std::function<void()> on_stopped) {
  stopping_ = true;
  uv_timer_stop(&timer_);
  if (!running()) {
    on_stopped();
    return;
  }
  on_stopped_ = std::move(on_stopped);
  child_->kill(options_.stop_signal ? options_.stop_signal() : SIGTERM);
}

void Service::restart(std::function<void()> on_ready, std::function<void()> on_failed) {
  if (stopping_ || restarting_ || failed_ || !running() || on_first_ready_) {
    on_failed();
    return;
  }
  restarting_ = true;
  on_first_ready_ = [this, on_ready = std::move(on_ready)] {
    on_restart_failed_ = nullptr;
    on_ready();
  };
  on_restart_failed_ = std::move(on_failed);
  child_->kill(options_.stop_signal ? options_.stop_signal() : SIGTERM);
}

void Service::kill_now() {
  if (child_) child_->kill(SIGKILL);
}

}  // namespace rend::supervisor
