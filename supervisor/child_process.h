// One child process started with uv_spawn (fork+exec), with chosen file descriptors inherited at
// fixed numbers and an optional readiness pipe.
//
// Lifetime: owned by whoever spawned it; the libuv handles are freed only in their close
// callbacks, after on_exit has run, so the owner must keep the object until `finished()`.
//
// A child can also be adopted: one the supervisor's previous image started before an in-place
// upgrade re-executed it (supervisor/upgrade_state.h). libuv has no process handle for it, so its
// exit is found by waitpid (reap_adopted, called on SIGCHLD); it is ours as before, since an exec
// keeps the pid and with it every child.
#pragma once

#include <uv.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rend::supervisor {

class ChildProcess {
 public:
  using ReadyFn = std::function<void()>;
  using ExitFn = std::function<void(int64_t exit_status, int term_signal)>;

  explicit ChildProcess(uv_loop_t* loop) : loop_(loop) {}
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // `inherit` fds appear in the child as 3, 4, ... in order; with `ready_pipe`, one more fd (the
  // next number, returned in ready_fd_number) is a pipe the child writes "ready\n" to.
  Status spawn(const std::vector<std::string>& argv, const std::vector<int>& inherit, bool ready_pipe,
               int& ready_fd_number, ReadyFn on_ready, ExitFn on_exit);
  // Takes on the running child `pid`, started by the previous image, with the supervisor's end of
  // its ready pipe (-1: none; it said "ready" already) and of its command socket (-1: none).
  Status adopt(int pid, int ready_fd, int command_fd, ExitFn on_exit);
  // Collects every adopted child that has exited and runs its on_exit.
  static void reap_adopted();
  void kill(int signum);
  // Lines the child writes on its ready pipe after "ready" (a worker's "l1-held").
  void set_on_message(std::function<void(std::string_view line)> fn) { on_message_ = std::move(fn); }
  // A socket for commands to the child (its other end was passed to it), owned from now on and
  // closed when the child exits.
  void set_command_socket(int fd) { command_fd_ = fd; }
  // Sends one command message, with `fd` attached unless negative. False if the child cannot get
  // it (no command socket, exited, or its socket is full).
  bool send_command(std::string_view command, int fd);
  int pid() const { return pid_; }
  // The supervisor's ends of the ready pipe and the command socket (-1 if none): what an in-place
  // upgrade hands to the next image.
  int ready_pipe_fd() const;
  int command_fd() const { return command_fd_; }
  bool running() const { return running_; }
  bool finished() const { return finished_; }

 private:
  void maybe_finished();
  // The child has exited: runs on_exit (both spawned and adopted children).
  void exited(int64_t status, int signal);
  // The child's stdio: ignored stdin, the supervisor's stdout/stderr, `inherit` as 3, 4, ..., and
  // the readiness pipe after them (its number in `ready_fd_number`).
  std::vector<uv_stdio_container_t> stdio_for(const std::vector<int>& inherit, bool ready_pipe, int& ready_fd_number);
  void close_process_handle();
  void close_ready_pipe();
  void watch_ready_pipe();
  // Handles the complete lines received on the ready pipe.
  void take_lines();

  uv_loop_t* loop_;
  uv_process_t process_{};
  uv_pipe_t ready_{};
  bool has_ready_pipe_ = false;
  bool process_closed_ = true;
  bool ready_closed_ = true;
  bool running_ = false;
  bool finished_ = false;
  int pid_ = 0;
  bool adopted_ = false;
  int command_fd_ = -1;
  std::string ready_buffer_;
  ReadyFn on_ready_;
  bool ready_seen_ = false;
  std::function<void(std::string_view)> on_message_;
  ExitFn on_exit_;
};

}  // namespace rend::supervisor
