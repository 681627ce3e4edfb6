// A long-running child the supervisor keeps alive (memcached, rend-l2): started with fork+exec,
// considered ready once its unix socket accepts connections, restarted with capped exponential
// backoff when it dies, and reported as crash-looping when it keeps dying. One that exits with its
// fatal status (a configuration it cannot use) is reported and left down instead.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "supervisor/child_process.h"

namespace rend::supervisor {

class Service {
 public:
  struct Options {
    std::string name;                                // "memcached", "rend-l2"
    std::function<std::vector<std::string>()> argv;  // rebuilt at each start
    std::vector<int> inherit;                        // fds the child gets as 3, 4, ...
    std::string socket_path;                         // ready when this accepts
    SupervisorConfig backoff;
    std::atomic<uint64_t>* restarts_metric = nullptr;
    std::atomic<int64_t>* up_metric = nullptr;
    int fatal_status = -1;  // an exit with this status is not retried (common/exit_codes.h)
    // The signal of a graceful stop, asked at each stop (memcached with a memory file saves its
    // cache on SIGUSR1); SIGTERM when unset.
    std::function<int()> stop_signal;
    // How long to wait before a start (the first, or a planned restart's); none when unset.
    std::function<uint64_t()> start_delay_ms;
  };

  Service(uv_loop_t* loop, Options options);
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  ~Service();

  // Starts the child; `on_first_ready` runs once, when its socket first accepts (or after ~10 s).
  void start(std::function<void()> on_first_ready);
  // Takes on the running `pid`, started by the supervisor's previous image (an in-place upgrade),
  // as if it had started it: ready, with `restarts` so far.
  void adopt(int pid, int restarts);
  // Graceful stop: SIGTERM, then `on_stopped` once it has exited.
  void stop(std::function<void()> on_stopped);
  void kill_now();
  // A planned restart: a graceful stop, then a start at once (no backoff, not counted as a crash)
  // with the command line as it is now; `on_ready` once the new one accepts, or `on_failed` if it
  // is not running (down, failed, stopping) or the new one exits before it accepts.
  void restart(std::function<void()> on_ready, std::function<void()> on_failed);

  bool running() const { return child_ && child_->running(); }
  // Exited with its fatal status: reported and left down until rend restarts.
  bool failed() const { return failed_; }
  int pid() const { return child_ ? child_->pid() : 0; }
  int restarts() const { return restarts_; }

 private:
  void spawn();
  void poll_ready(int attempts_left);
  void on_exit(int64_t status, int signal);

  uv_loop_t* loop_;
  Options options_;
  std::unique_ptr<ChildProcess> child_;
  std::vector<std::unique_ptr<ChildProcess>> retired_;
  uv_timer_t timer_;  // closed by the loop teardown at exit (close_loop)
  std::function<void()> on_first_ready_;
  std::function<void()> on_stopped_;
  int ready_attempts_ = 0;
  int restarts_ = 0;
  int streak_ = 0;
  bool failed_ = false;
  uint64_t started_ms_ = 0;
  bool stopping_ = false;
  bool restarting_ = false;  // a planned restart: the exit is expected
  std::function<void()> on_restart_failed_;
};

}  // namespace rend::supervisor
