#include "worker/supervisor_channel.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "common/fd_passing.h"

namespace rend::worker {

SupervisorChannel::SupervisorChannel(uv_loop_t* loop, int fd, Handlers handlers)
    : fd_(fd), handlers_(std::move(handlers)) {
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  fcntl(fd_, F_SETFD, FD_CLOEXEC);
  uv_poll_init_socket(loop, &poll_, fd_);
  poll_.data = this;
  uv_poll_start(&poll_, UV_READABLE,
                [](uv_poll_t* p, int, int) { static_cast<SupervisorChannel*>(p->data)->on_readable(); });
}

SupervisorChannel::~SupervisorChannel() {
  if (!closed_) ::close(fd_);
}

void SupervisorChannel::close() {
  if (closed_) return;
  closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_),
           [](uv_handle_t* h) { ::close(static_cast<SupervisorChannel*>(h->data)->fd_); });
}

void SupervisorChannel::on_readable() {
  char buffer[64];
  while (!closed_) {
    int fd = -1;
    const ssize_t n = receive_with_fd(fd_, buffer, fd);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      close();  // the supervisor is gone: nothing more will come
      return;
    }
    const std::string_view command(buffer, static_cast<size_t>(n));
    if (fd >= 0 && command == "hand-off") {
      handlers_.hand_off(fd);
    } else if (fd >= 0 && command == "take-over") {
      handlers_.take_over(fd);
    } else if (fd < 0 && (command == "l1-hold" || command == "l2-hold")) {
      handlers_.hold(command[1] == '1' ? Tier::kL1 : Tier::kL2);
    } else if (fd < 0 && (command == "l1-release" || command == "l2-release")) {
      handlers_.release(command[1] == '1' ? Tier::kL1 : Tier::kL2);
    } else {
      spdlog::warn("unknown command from the supervisor ({} bytes)", n);
      if (fd >= 0) ::close(fd);
    }
  }
}

}  // namespace rend::worker
