#include "l2/connection.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "common/protocol/binary_format.h"
#include "common/protocol/binary_parser.h"
#include "common/protocol/text_parser.h"
#include "l2/batch.h"
#include "l2/server.h"

namespace rend::l2 {

Connection::Connection(Server& server, bool tcp) : server_(server) {
  if (tcp) {
    uv_tcp_init(server_.loop(), &h_.tcp);
  } else {
    uv_pipe_init(server_.loop(), &h_.pipe, 0);
  }
  h_.handle.data = this;
}

Connection::~Connection() = default;

void Connection::start() {
  // Set before the first batch exists, so worker threads only ever read it.
  static uint32_t tcp_connections = 0;
  int fd = -1;
  ucred peer{};
  socklen_t len = sizeof peer;
  if (h_.handle.type == UV_NAMED_PIPE && uv_fileno(&h_.handle, &fd) == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 && peer.pid > 0) {
    accessor_ = static_cast<uint32_t>(peer.pid);  // pids stay below 2^22
  } else {
    tcp_connections = (tcp_connections + 1) & 0x7fffffffu;
    accessor_ = 0x80000000u | tcp_connections;  // never 0, never a pid
  }
  update_reading();
}

void Connection::update_reading() {
  // Behind a running batch we read ahead up to kInputHighWater; with none, up to one request of
  // any valid size (the parser refuses anything larger).
  const size_t input_cap = batch_ ? kInputHighWater : server_.max_request_bytes();
  const bool want =
      !closing_ && !input_done_ && !parse_done_ && unsent() < server_.output_high_water() && buffered() < input_cap;
  if (want && !reading_) {
    reading_ = true;
    uv_read_start(
        &h_.stream, [](uv_handle_t* h, size_t, uv_buf_t* buf) { static_cast<Connection*>(h->data)->on_alloc(buf); },
        [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) { static_cast<Connection*>(s->data)->on_read(nread); });
  } else if (!want && reading_) {
    reading_ = false;
    uv_read_stop(&h_.stream);
  }
}

void Connection::on_alloc(uv_buf_t* buf) {
  // Batches copied what they use, so the unparsed tail may move.
  *buf = in_.next_read();
}

void Connection::on_read(ssize_t nread) {
  if (nread < 0) {
    // EOF: answer what was already asked (a half-closed client still reads), then close. A
    // client that closed altogether (a worker that gave up waiting) reads nothing more: its
    // running batch stops before its next segment and the rest is not executed, so a write it
    // reported as failed is not applied behind a later one.
    input_done_ = true;
    update_reading();
    if (nread != UV_EOF || peer_closed()) {
      close();
      return;
    }
    flush();
    return;
  }
  server_.stats().add(L2Counter::bytes_read, static_cast<uint64_t>(nread));
  in_.commit(static_cast<size_t>(nread));
  swallow_input();
  flush();
  if (closing_) return;
  // Idle with nothing buffered: give back a buffer a burst made large.
  if (!batch_) in_.shrink_if_empty(4 * kReadGrowth);
  update_reading();
}

void Connection::swallow_input() {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(swallow_, buffered()));
  in_.consume(n);
  swallow_ -= n;
}

bool Connection::start_batch() {
  // Output the client has not read yet holds back new work, so replies can't pile up unbounded.
  if (closing_ || batch_ || parse_done_ || unsent() >= server_.output_high_water()) return false;
  struct Parsed {
    proto::Request request;
    const char* at;  // in the read buffer, which does not move before the batch copies it
    size_t size;
  };
  std::vector<Parsed> parsed;
  size_t bytes = 0;
  const size_t max_item = server_.max_item_size();
  while (parsed.size() < kMaxBatchRequests && bytes < kInputHighWater) {
    swallow_input();
    if (swallow_ > 0 || in_.empty()) break;
    const std::span<const char> input = in_.unparsed();
    if (!protocol_known_) {
      protocol_known_ = true;
      protocol_ = static_cast<uint8_t>(input[0]) == proto::bin::kRequestMagic ? proto::Protocol::kBinary
                                                                              : proto::Protocol::kText;
    }
    const proto::ParseResult r = protocol_ == proto::Protocol::kBinary
                                     ? proto::parse_binary_request(input, max_item, true)
                                     : proto::parse_text(input, max_item);
    if (r.status == proto::ParseStatus::kNeedMore) break;
    if (r.status == proto::ParseStatus::kClose) {
      // Unframeable input: memcached closes without a word (after answering what came before).
      server_.stats().add(L2Counter::protocol_errors);
      parse_done_ = true;
      close_when_flushed_ = true;
      break;
    }
    parsed.push_back({r.request, input.data(), r.consumed});
    if (protocol_ == proto::Protocol::kBinary && r.consumed >= proto::bin::kHeaderSize) {
      parsed.back().request.track_races = (static_cast<uint8_t>(input[5]) & proto::bin::kDataTypeTrackRaces) != 0;
    }
    bytes += r.consumed;
    in_.consume(r.consumed);
    swallow_ = r.swallow;
    if (r.request.close_after) {
      parse_done_ = true;
      break;
    }
  }
  if (parsed.empty()) {
    if (!parse_done_ && buffered() > server_.max_request_bytes()) {
      spdlog::warn("client sent a request larger than any valid one; closing");
      close();
    }
    return false;
  }
  batch_ = std::make_unique<Batch>(*this, server_.engine(), server_.output_high_water());
  batch_->reserve(bytes, parsed.size());
  for (const Parsed& p : parsed) batch_->add(p.request, p.at, p.size);
  return true;
}

void Connection::run_batch() {
  // Nothing of this connection runs on a worker now (one batch in flight), so whatever the loop
  // answers here comes after every earlier reply and before every later one.
  InlineBudget& budget = server_.inline_budget();
  if (budget.read_keys > 0 || budget.write_keys > 0) {
    batch_->run_inline(budget);
    out_.buffer().append(batch_->reply());
    batch_->reply().clear();
    if (batch_->finished()) {
      finish_batch();
      return;
    }
    // Stopped at the reply limit: the next pass sends it and goes on once there is room.
    if (unsent() >= server_.output_high_water()) return;
  }
  submit(batch_.get());
}

void Connection::finish_batch() {
  if (batch_->close_after()) {
    close_when_flushed_ = true;
    parse_done_ = true;
  }
  batch_.reset();
}

void Connection::submit(Batch* batch) {
  batch_running_ = true;
  server_.executor().submit(batch);
}

void Connection::on_batch_done(Batch* batch) {
  batch_running_ = false;
  if (closing_) {
    batch_.reset();
    if (handle_closed_) on_handle_closed();  // the close callback already ran: finish the job
    return;
  }
  out_.buffer().append(batch->reply());
  batch->reply().clear();
  if (batch->finished()) finish_batch();
  // One write per batch: the whole reply of a pipeline goes out in as few syscalls as it can.
  flush();
}

void Connection::flush() {
  if (closing_) return;
  for (;;) {
    send_output();
    if (closing_) return;
    if (batch_running_) break;
    if (batch_) {
      // A batch waiting for output room (or one the loop ran part of).
      if (unsent() >= server_.output_high_water()) break;
    } else if (!start_batch()) {
      break;
    }
    // Each turn either finishes a batch on the loop, stops it at the reply limit (its output is
    // sent next turn) or hands it to a worker: the loop ends.
    run_batch();
  }
  update_reading();
  maybe_close();
}

void Connection::send_output() {
  const int n = out_.flush(&h_.stream, [this](int status, size_t bytes) {
    if (status == 0) server_.stats().add(L2Counter::bytes_written, bytes);
    on_write_done(status);
  });
  if (n < 0) {
    close();
    return;
  }
  server_.stats().add(L2Counter::bytes_written, static_cast<uint64_t>(n));
}

void Connection::on_write_done(int status) {
  if (status < 0) {
    close();
    return;
  }
  flush();
}

void Connection::drain() {
  draining_ = true;
  maybe_close();
}

void Connection::maybe_close() {
  if (closing_) return;
  const bool flushed = out_.idle();
  if (close_when_flushed_ && flushed && !batch_) {
    close();
    return;
  }
  if (batch_ || !flushed) return;
  // After EOF (or quit) every complete request has been answered by now: what is left in the
  // buffer is a request cut off in the middle, which can never complete.
  if (input_done_ || parse_done_) {
    close();
    return;
  }
  if (draining_ && swallow_ == 0 && in_.empty() && !bytes_waiting()) close();
}

bool Connection::bytes_waiting() {
  // Requests sent before the drain began may still sit in the kernel: they are in flight from
  // the client's point of view and must be answered, not cut off.
  uv_os_fd_t fd;
  int pending = 0;
  if (uv_fileno(&h_.handle, &fd) != 0 || ioctl(fd, FIONREAD, &pending) != 0) return false;
  return pending > 0;
}

bool Connection::peer_closed() {
  // POLLHUP: both directions are shut (a unix-socket peer that closed), unlike a half-close.
  uv_os_fd_t fd;
  if (uv_fileno(&h_.handle, &fd) != 0) return false;
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) != 0;
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  if (reading_) uv_read_stop(&h_.stream);
  reading_ = false;
  // A batch that has not started yet (waiting for output room) is simply dropped; a running one
  // stops before its next segment.
  if (batch_ && !batch_running_) batch_.reset();
  if (batch_) batch_->cancel();
  uv_close(&h_.handle, [](uv_handle_t* h) {
    auto* self = static_cast<Connection*>(h->data);
    self->handle_closed_ = true;
    self->on_handle_closed();
  });
}

void Connection::on_handle_closed() {
  // A running batch still points here: the last of (close callback, batch completion) frees.
  if (batch_running_) return;
  server_.on_connection_closed(this);
}

}  // namespace rend::l2
