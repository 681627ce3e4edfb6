#include "supervisor/child_process.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>

#include "common/fd_passing.h"

namespace rend::supervisor {

namespace {
// Adopted children still running, for reap_adopted (the supervisor is single-threaded).
std::vector<ChildProcess*>& adopted_children() {
  static std::vector<ChildProcess*> children;
  return children;
}
}  // namespace

ChildProcess::~ChildProcess() {
  if (!finished_ && running_) spdlog::error("child {} object destroyed while running", pid_);
  if (command_fd_ >= 0) close(command_fd_);
  std::erase(adopted_children(), this);
}

Status ChildProcess::adopt(int pid, int ready_fd, int command_fd, ExitFn on_exit) {
  if (pid <= 0) {
    for (int fd : {ready_fd, command_fd}) {
      if (fd >= 0) close(fd);
    }
    return Status::error(fmt::format("no process {} to adopt", pid));
  }
  on_exit_ = std::move(on_exit);
  pid_ = pid;
  adopted_ = true;
  command_fd_ = command_fd;
  running_ = true;
  adopted_children().push_back(this);  // reaped whatever else fails
  if (ready_fd < 0) return Status::ok();
  uv_pipe_init(loop_, &ready_, 0);
  ready_.data = this;
  has_ready_pipe_ = true;
  ready_closed_ = false;
  if (const int rc = uv_pipe_open(&ready_, ready_fd); rc != 0) {
    // Managed without its messages: a hold it confirms ends at its timeout instead.
    close(ready_fd);
    close_ready_pipe();
    return Status::error(fmt::format("cannot watch the ready pipe of pid {}: {}", pid, uv_strerror(rc)));
  }
  ready_seen_ = true;
  watch_ready_pipe();
  return Status::ok();
}

void ChildProcess::reap_adopted() {
  const std::vector<ChildProcess*> children = adopted_children();  // on_exit may change the list
  for (ChildProcess* c : children) {
    int status = 0;
    if (!c->running_ || waitpid(c->pid_, &status, WNOHANG) != c->pid_) continue;
    std::erase(adopted_children(), c);
    if (WIFSIGNALED(status)) {
      c->exited(0, WTERMSIG(status));
    } else {
      c->exited(WEXITSTATUS(status), 0);
    }
    c->maybe_finished();
  }
}

int ChildProcess::ready_pipe_fd() const {
  uv_os_fd_t fd = -1;
  if (!has_ready_pipe_ || ready_closed_ || uv_fileno(reinterpret_cast<const uv_handle_t*>(&ready_), &fd) != 0) {
    return -1;
  }
  return fd;
}

void ChildProcess::exited(int64_t status, int signal) {
  running_ = false;
  if (command_fd_ >= 0) close(command_fd_);
  command_fd_ = -1;
  if (on_exit_) on_exit_(status, signal);
}

bool ChildProcess::send_command(std::string_view command, int fd) {
  if (command_fd_ < 0 || !running_) return false;
  return send_with_fd(command_fd_, {command.data(), command.size()}, fd) == static_cast<ssize_t>(command.size());
}

Status ChildProcess::spawn(const std::vector<std::string>& argv, const std::vector<int>& inherit, bool ready_pipe,
                           int& ready_fd_number, ReadyFn on_ready, ExitFn on_exit) {
  on_ready_ = std::move(on_ready);
  on_exit_ = std::move(on_exit);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<uv_stdio_container_t> stdio = stdio_for(inherit, ready_pipe, ready_fd_number);

  uv_process_options_t options{};
  options.file = args[0];
  options.args = args.data();
  options.stdio_count = static_cast<int>(stdio.size());
  options.stdio = stdio.data();
  options.exit_cb = [](uv_process_t* p, int64_t status, int signal) {
    auto* self = static_cast<ChildProcess*>(p->data);
    self->exited(status, signal);
    self->close_process_handle();
  };
  process_.data = this;
  const int rc = uv_spawn(loop_, &process_, &options);
  if (rc != 0) {
    // uv_spawn failures still need the handles closed.
    close_process_handle();
    if (has_ready_pipe_) close_ready_pipe();
    return Status::error(fmt::format("cannot start {}: {}", argv[0], uv_strerror(rc)));
  }
  process_closed_ = false;
  running_ = true;
  pid_ = process_.pid;
  if (has_ready_pipe_) watch_ready_pipe();
  return Status::ok();
}

std::vector<uv_stdio_container_t> ChildProcess::stdio_for(const std::vector<int>& inherit, bool ready_pipe,
                                                          int& ready_fd_number) {
  std::vector<uv_stdio_container_t> stdio(3 + inherit.size() + (ready_pipe ? 1 : 0));
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = 1;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  for (size_t i = 0; i < inherit.size(); ++i) {
    stdio[3 + i].flags = UV_INHERIT_FD;
    stdio[3 + i].data.fd = inherit[i];
  }
  if (ready_pipe) {
    uv_pipe_init(loop_, &ready_, 0);
    ready_.data = this;
    has_ready_pipe_ = true;
    ready_closed_ = false;
    const size_t idx = 3 + inherit.size();
    stdio[idx].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[idx].data.stream = reinterpret_cast<uv_stream_t*>(&ready_);
    ready_fd_number = static_cast<int>(idx);
  }
  return stdio;
}

void ChildProcess::close_process_handle() {
  process_closed_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&process_), [](uv_handle_t* h) {
    auto* self = static_cast<ChildProcess*>(h->data);
    self->process_closed_ = true;
    self->maybe_finished();
  });
}

void ChildProcess::close_ready_pipe() {
  uv_close(reinterpret_cast<uv_handle_t*>(&ready_), [](uv_handle_t* h) {
    auto* self = static_cast<ChildProcess*>(h->data);
    self->ready_closed_ = true;
    self->maybe_finished();
  });
}

void ChildProcess::watch_ready_pipe() {
  // The child writes "ready\n" once it serves; the pipe closes when it exits.
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&ready_),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static char scratch[256];
        *buf = uv_buf_init(scratch, sizeof scratch);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* self = static_cast<ChildProcess*>(s->data);
        if (n > 0) {
          self->ready_buffer_.append(buf->base, static_cast<size_t>(n));
          self->take_lines();
          return;
        }
        if (n < 0) self->close_ready_pipe();
      });
}

void ChildProcess::take_lines() {
  size_t end;
  while ((end = ready_buffer_.find('\n')) != std::string::npos) {
    const std::string line = ready_buffer_.substr(0, end);
    ready_buffer_.erase(0, end + 1);
    if (!ready_seen_ && line == "ready") {
      ready_seen_ = true;
      if (on_ready_) {
        auto fn = std::move(on_ready_);
        on_ready_ = nullptr;
        fn();
      }
    } else if (ready_seen_ && on_message_) {
      on_message_(line);
    }
  }
  if (ready_buffer_.size() > 4096) ready_buffer_.clear();  // no line is that long: not ours
}

void ChildProcess::kill(int signum) {
  if (!running_) return;
  if (adopted_) {
    ::kill(pid_, signum);
  } else {
    uv_process_kill(&process_, signum);
  }
}

void ChildProcess::maybe_finished() {
  if (process_closed_ && ready_closed_) finished_ = true;
}

}  // namespace rend::supervisor
