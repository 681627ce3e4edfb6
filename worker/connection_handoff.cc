#include "worker/connection_handoff.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fd_passing.h"
#include "common/handoff_wire.h"

namespace rend::worker {

namespace {

uint8_t protocol_code(const HandedConnection& c) {
  if (!c.protocol_known) return 0;
  return c.protocol == proto::Protocol::kBinary ? 2 : 1;
}

}  // namespace

// ---- sender ------------------------------------------------------------------------------------

HandoffSender::HandoffSender(uv_loop_t* loop, int channel_fd) : loop_(loop), fd_(channel_fd) {
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  uv_poll_init_socket(loop_, &poll_, fd_);
  poll_.data = this;
}

HandoffSender::~HandoffSender() {
  for (Message& m : queue_) {
    if (m.fd >= 0) close(m.fd);
  }
  if (!closed_) close(fd_);
}

void HandoffSender::send(HandedConnection c) {
  if (closed_) {
    close(c.fd);
    lost_++;
    return;
  }
  HandoffHeader h{};
  std::memcpy(h.magic, kHandoffMagic, sizeof kHandoffMagic);
  h.tcp = c.tcp ? 1 : 0;
  h.mode = static_cast<uint8_t>(c.mode);
  h.protocol = protocol_code(c);
  h.has_fd = 1;
  h.swallow = c.swallow;
  h.unparsed = c.unparsed.size();
  const size_t first = std::min(kHandoffChunk, c.unparsed.size());
  Message m;
  m.data.assign(reinterpret_cast<const char*>(&h), sizeof h);
  m.data.append(c.unparsed, 0, first);
  m.fd = c.fd;
  queue_.push_back(std::move(m));
  for (size_t at = first; at < c.unparsed.size(); at += kHandoffChunk) {
    queue_.push_back(Message{c.unparsed.substr(at, kHandoffChunk), -1});
  }
  pump();
}

void HandoffSender::pump() {
  while (!queue_.empty()) {
    Message& m = queue_.front();
    const ssize_t n = send_with_fd(fd_, m.data, m.fd);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      if (!polling_) {
        polling_ = true;
        uv_poll_start(&poll_, UV_WRITABLE,
                      [](uv_poll_t* p, int, int) { static_cast<HandoffSender*>(p->data)->pump(); });
      }
      return;
    }
    if (n < 0) {
      spdlog::error("handing connections over failed: {}; closing them instead", strerror(errno));
      fail_all();
      return;
    }
    if (m.fd >= 0) close(m.fd);  // the message holds its own reference now
    queue_.pop_front();
  }
  if (polling_) {
    polling_ = false;
    uv_poll_stop(&poll_);
  }
}

void HandoffSender::fail_all() {
  for (Message& m : queue_) {
    if (m.fd >= 0) {
      close(m.fd);
      lost_++;
    }
  }
  queue_.clear();
  finish();
}

void HandoffSender::finish() {
  if (closed_) return;
  closed_ = true;
  for (Message& m : queue_) {
    if (m.fd >= 0) {
      close(m.fd);
      lost_++;
    }
  }
  queue_.clear();
  if (lost_ > 0) spdlog::error("{} client connections could not be handed over and were closed", lost_);
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_),
           [](uv_handle_t* h) { close(static_cast<HandoffSender*>(h->data)->fd_); });
}

// ---- receiver ----------------------------------------------------------------------------------

HandoffReceiver::HandoffReceiver(uv_loop_t* loop, int channel_fd, OnConnection on_connection, OnEnd on_end)
    : loop_(loop), fd_(channel_fd), on_connection_(std::move(on_connection)), on_end_(std::move(on_end)) {
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  uv_poll_init_socket(loop_, &poll_, fd_);
  poll_.data = this;
  uv_poll_start(&poll_, UV_READABLE,
                [](uv_poll_t* p, int, int) { static_cast<HandoffReceiver*>(p->data)->on_readable(); });
}

HandoffReceiver::~HandoffReceiver() {
  if (current_.fd >= 0) close(current_.fd);
  if (!closed_) close(fd_);
}

void HandoffReceiver::on_readable() {
  static thread_local char buffer[sizeof(HandoffHeader) + kHandoffChunk];
  // A bounded number per wakeup, so a long handoff does not hold up the clients already served.
  for (int i = 0; i < 256 && !closed_; ++i) {
    int fd = -1;
    const ssize_t n = receive_with_fd(fd_, buffer, fd);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      if (n < 0) spdlog::error("receiving handed-over connections failed: {}", strerror(errno));
      end();
      return;
    }
    if (!take(buffer, static_cast<size_t>(n), fd)) {
      spdlog::error("malformed connection handoff message; closing the channel");
      end();
      return;
    }
  }
}

bool HandoffReceiver::take(const char* data, size_t n, int fd) {
  if (!in_progress_) {
    HandoffHeader h;
    uint64_t rest = 0;
    if (!read_handoff_header({data, n}, h, rest) || h.mode > static_cast<uint8_t>(TierMode::kL1L2Batch)) {
      if (fd >= 0) close(fd);
      return false;
    }
    current_ = HandedConnection{};
    current_.fd = fd;
    current_.tcp = h.tcp != 0;
    current_.mode = static_cast<TierMode>(h.mode);
    current_.protocol_known = h.protocol != 0;
    current_.protocol = h.protocol == 2 ? proto::Protocol::kBinary : proto::Protocol::kText;
    current_.swallow = h.swallow;
    current_.unparsed.assign(data + sizeof h, n - sizeof h);
    fd_lost_ = h.has_fd != 0 && fd < 0;
    remaining_ = rest;
    in_progress_ = true;
  } else {
    if (fd >= 0) close(fd);
    if (n > remaining_) return false;
    current_.unparsed.append(data, n);
    remaining_ -= n;
  }
  if (remaining_ > 0) return true;
  in_progress_ = false;
  if (fd_lost_) {
    // The kernel dropped the socket (this process is out of descriptors): the client sees a close.
    spdlog::warn("a handed-over connection was lost: out of descriptors");
    current_ = HandedConnection{};
    return true;
  }
  HandedConnection c = std::move(current_);
  current_ = HandedConnection{};
  on_connection_(std::move(c));
  return true;
}

void HandoffReceiver::end() {
  if (closed_) return;
  closed_ = true;
  if (current_.fd >= 0) close(current_.fd);
  current_ = HandedConnection{};
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_),
           [](uv_handle_t* h) { close(static_cast<HandoffReceiver*>(h->data)->fd_); });
  if (on_end_) on_end_();
}

}  // namespace rend::worker
