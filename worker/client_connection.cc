#include "worker/client_connection.h"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>

#include "common/protocol/binary_format.h"
#include "common/protocol/binary_parser.h"
#include "common/protocol/command_traits.h"
#include "common/protocol/text_parser.h"
#include "worker/dispatcher.h"
#include "worker/meta_ops.h"
#include "worker/worker.h"

namespace rend::worker {

namespace {
// Largest request we ever buffer: a value of max_item_size plus its command line, or a long get.
size_t buffer_cap(size_t max_item_size) { return max_item_size + proto::kMaxTextGetLine + 4096; }
}  // namespace

void Op::finish() {
  done = true;
  if (metrics != nullptr) record_request(*metrics, Tier::kClient, metric_command, result, metric_clock_since(start_ns));
  if (conn != nullptr) conn->on_op_finished();
}

ClientConnection::ClientConnection(Worker& worker, bool tcp, TierMode mode) : worker_(worker), mode_(mode) {
  if (tcp) {
    uv_tcp_init(worker_.loop(), &h_.tcp);
  } else {
    uv_pipe_init(worker_.loop(), &h_.pipe, 0);
  }
  h_.handle.data = this;
}

void ClientConnection::start() {
  last_read_ms_ = uv_now(worker_.loop());
  if (!in_.empty()) {
    process_input();  // input a previous worker read and did not parse
  } else {
    update_reading();
  }
}

void ClientConnection::adopt(const HandedConnection& from) {
  protocol_known_ = from.protocol_known;
  protocol_ = from.protocol;
  swallow_ = from.swallow;
  for (size_t at = 0; at < from.unparsed.size();) {
    const uv_buf_t room = in_.next_read();
    const size_t n = std::min<size_t>(room.len, from.unparsed.size() - at);
    std::memcpy(room.base, from.unparsed.data() + at, n);
    in_.commit(n);
    at += n;
  }
}

HandedConnection ClientConnection::handoff_state() {
  HandedConnection h;
  uv_os_fd_t fd;
  if (uv_fileno(&h_.handle, &fd) == 0) h.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  h.tcp = h_.handle.type == UV_TCP;
  h.mode = mode_;
  h.protocol_known = protocol_known_;
  h.protocol = protocol_;
  h.swallow = swallow_;
  const std::span<const char> rest = in_.unparsed();
  h.unparsed.assign(rest.data(), rest.size());
  return h;
}

void ClientConnection::update_reading() {
  // While complete requests wait in the buffer (parsing stalled), reading more would only grow it:
  // a client that pipelines faster than its requests finish is held back by TCP, never cut off.
  const bool want = !closing_ && !input_done_ && !handing_off_ && !barrier_ && !parse_stalled_ && may_parse();
  if (want && !reading_) {
    reading_ = true;
    uv_read_start(
        &h_.stream,
        [](uv_handle_t* h, size_t, uv_buf_t* buf) { static_cast<ClientConnection*>(h->data)->on_alloc(buf); },
        [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
          static_cast<ClientConnection*>(s->data)->on_read(nread);
        });
  } else if (!want && reading_) {
    reading_ = false;
    uv_read_stop(&h_.stream);
  }
}

void ClientConnection::on_alloc(uv_buf_t* buf) {
  // Requests already dispatched copied what they need, so the unparsed tail may move.
  *buf = in_.next_read();
}

void ClientConnection::on_read(ssize_t nread) {
  if (nread < 0) {
    // EOF or error: answer what was already asked (a half-closed client still reads), then close.
    input_done_ = true;
    update_reading();
    if (nread != UV_EOF) {
      close();
      return;
    }
    in_.clear();
    maybe_close();
    return;
  }
  bump(worker_.stats(), Counter::bytes_read, static_cast<uint64_t>(nread));
  last_read_ms_ = uv_now(worker_.loop());
  in_.commit(static_cast<size_t>(nread));
  process_input();
  in_.release_if_empty();  // an idle client holds no read buffer
  // Only an incomplete request counts here: complete ones that wait for their turn are the
  // client's pipeline, bounded by not reading while they wait.
  if (!closing_ && !parse_stalled_ && in_.size() > buffer_cap(worker_.config().worker.max_item_size)) {
    spdlog::warn("client sent a request larger than any valid one; closing");
    close();
  }
}

bool ClientConnection::at_pending_limit() const { return pending_.size() >= window(); }

size_t ClientConnection::window() const {
  // The replies of requests in flight all come back into this worker's memory, whether or not the
  // client reads them: a client pipelining reads of large values (or never reading) could have
  // max_pending_requests of them at once, gigabytes, and hold up every other client of the
  // backends meanwhile. So the requests in flight are bounded by about output_high_water bytes of
  // replies, as far as this client's replies so far tell, and by max_pending_requests. Until a
  // reply has told, a first burst gets kFirstWindow.
  const size_t max = static_cast<size_t>(worker_.config().worker.max_pending_requests);
  if (!reply_size_known_) return std::min(max, kFirstWindow);
  const size_t by_bytes = worker_.config().worker.output_high_water / std::max<size_t>(reply_bytes_avg_, 1);
  return std::clamp(by_bytes, std::min(max, kMinWindow), max);
}

void ClientConnection::note_reply_size(size_t bytes) {
  // A moving average that follows a change of reply sizes within a few replies.
  reply_bytes_avg_ = reply_size_known_ ? (reply_bytes_avg_ * 7 + bytes) / 8 : bytes;
  reply_size_known_ = true;
}

bool ClientConnection::may_parse() const {
  // Replies the client has not read yet hold back new work as they hold back reading, so a client
  // that never reads makes rend buffer no more than the high-water mark plus what is in flight.
  return !at_pending_limit() && unsent() < worker_.config().worker.output_high_water;
}

void ClientConnection::process_input() {
  const size_t max_item = worker_.config().worker.max_item_size;
  parse_stalled_ = false;
  while (!closing_ && !input_done_ && !handing_off_ && !in_.empty()) {
    if (swallow_ > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(swallow_, in_.size()));
      in_.consume(n);
      swallow_ -= n;
      continue;
    }
    if (!may_parse()) {
      parse_stalled_ = true;
      break;
    }
    if (barrier_) {
      if (!pending_.empty()) {
        parse_stalled_ = true;
        break;
      }
      barrier_ = false;
    }
    const std::span<const char> input = in_.unparsed();
    if (!protocol_known_) {
      protocol_known_ = true;
      protocol_ = static_cast<uint8_t>(input[0]) == proto::bin::kRequestMagic ? proto::Protocol::kBinary
                                                                              : proto::Protocol::kText;
    }
    const proto::ParseResult r = protocol_ == proto::Protocol::kBinary ? proto::parse_binary_request(input, max_item)
                                                                       : proto::parse_text(input, max_item);
    if (r.status == proto::ParseStatus::kNeedMore) break;
    if (r.status == proto::ParseStatus::kClose) {
      bump(worker_.stats(), Counter::protocol_errors);
      input_done_ = true;
      close_when_flushed_ = true;
      break;
    }
    if (is_barrier(r.request)) {
      // Everything this client sent before must be finished before the flush starts, and the
      // flush before anything after it: the same order memcached gives one connection.
      if (!pending_.empty()) {
        barrier_ = true;
        parse_stalled_ = true;
        break;  // parsed again once the queue is empty
      }
      barrier_ = true;
    }
    if (switches_l1_connections(r.request)) {
      barrier_ = true;  // waits for the earlier requests only: nothing is held back after it
      parse_stalled_ = true;
      break;
    }
    in_.consume(r.consumed);
    swallow_ = r.swallow;
    if (r.request.close_after) input_done_ = true;
    worker_.dispatcher().dispatch(*this, r.request);
  }
  update_reading();
  maybe_close();
}

bool ClientConnection::switches_l1_connections(const proto::Request& r) {
  // In l1only a meta command goes to memcached on a meta connection, a classic key command on a
  // binary one: memcached may run two connections' requests in either order, so a request on
  // the other kind than the one before waits until this client's earlier requests are answered.
  if (mode_ != TierMode::kL1Only || worker_.l1_meta() == nullptr) return false;
  const proto::CommandTraits& t = proto::traits(r.command);
  // A text cas with unique 0 asks L1 on a meta connection too (admin_ops.cc).
  const bool cas_zero = r.command == proto::Command::kCas && r.cas == 0 && r.protocol == proto::Protocol::kText;
  const bool meta = uses_l1_meta_connection(r.command) || cas_zero;
  if (!meta && !t.reads_key && !t.writes_key) return false;
  const L1Connections kind = meta ? L1Connections::kMeta : L1Connections::kBinary;
  const bool wait = last_l1_connections_ != L1Connections::kNone && kind != last_l1_connections_ && !pending_.empty();
  if (!wait) last_l1_connections_ = kind;
  return wait;
}

bool ClientConnection::is_barrier(const proto::Request& r) const {
  // A flush goes out on every backend connection, while the requests around it each take the
  // one their key maps to: memcached may run a later write on one connection before the flush on
  // another (and flush it), or an earlier one after. So the flush waits for everything before it
  // and holds back everything after it, in every mode: the order memcached gives one connection.
  return r.command == proto::Command::kFlushAll;
}

void ClientConnection::enqueue(const std::shared_ptr<Op>& op) {
  op->conn = this;
  pending_.push_back(op);
}

void ClientConnection::on_op_finished() {
  bool any = false;
  while (!pending_.empty() && pending_.front().done) {
    Op& op = pending_.front();
    op.before_send();
    note_reply_size(op.reply.size());
    std::string& out = out_.buffer();
    if (out.empty()) {
      out.swap(op.reply);  // a large reply is handed over, not copied
    } else {
      out.append(op.reply);
    }
    any = true;
    if (op.close_after) {
      // Nothing after a quit or a fatal error is answered: memcached closes there too.
      close_when_flushed_ = true;
      input_done_ = true;
      for (const auto& rest : pending_.ops()) rest->conn = nullptr;
      pending_.clear();
      break;
    }
    op.conn = nullptr;
    pending_.pop_front();
  }
  if (any) worker_.mark_dirty(this);
}

void ClientConnection::flush() {
  if (closing_) return;
  const int n = out_.flush(&h_.stream, [this](int status, size_t bytes) {
    if (status == 0) bump(worker_.stats(), Counter::bytes_written, bytes);
    on_write_done(status);
  });
  if (n < 0) {
    close();
    return;
  }
  bump(worker_.stats(), Counter::bytes_written, static_cast<uint64_t>(n));
  update_reading();
  maybe_close();
  // A flush was waiting for this client's earlier requests, or later ones for the flush.
  if (barrier_ && pending_.empty() && !closing_) {
    barrier_ = false;
    if (!in_.empty()) {
      process_input();
    } else {
      update_reading();
    }
  } else if (parse_stalled_ && !closing_ && may_parse() && !barrier_) {
    // Requests finished: the buffered ones go first, and reading resumes once they are parsed.
    process_input();
  }
}

void ClientConnection::on_write_done(int status) {
  if (status < 0) {
    close();
    return;
  }
  flush();
  // Reading may have paused with complete requests still buffered.
  if (!closing_ && !in_.empty()) process_input();
}

void ClientConnection::drain() {
  draining_ = true;
  maybe_close();
}

void ClientConnection::hand_off() {
  draining_ = true;
  handing_off_ = true;
  update_reading();
  maybe_close();
}

void ClientConnection::maybe_close() {
  if (closing_) return;
  const bool flushed = out_.idle();
  const bool answered = pending_.empty() && flushed;
  // Closing for unframeable input or after a quit: first every earlier request gets its reply.
  if (close_when_flushed_ && answered) {
    close();
    return;
  }
  // EOF: nothing more can arrive, so a value being swallowed will never finish either.
  if (answered && input_done_) {
    close();
    return;
  }
  if (answered && handing_off_) {
    // A request boundary: what was parsed is answered and written; the rest goes with the socket.
    handed_off = worker_.hand_over(*this);
    close();  // handed over, or (the handoff failed) closed between requests as a drain would
    return;
  }
  if (answered && draining_ && swallow_ == 0 && in_.empty() && !bytes_waiting()) close();
}

bool ClientConnection::bytes_waiting() {
  // Requests the client sent before the drain began may still sit in the kernel, not yet read:
  // they are in flight from the client's view and must be answered, not cut off.
  uv_os_fd_t fd;
  int pending = 0;
  if (uv_fileno(&h_.handle, &fd) != 0 || ioctl(fd, FIONREAD, &pending) != 0) return false;
  return pending > 0;
}

void ClientConnection::close() {
  if (closing_) return;
  closing_ = true;
  for (const auto& op : pending_.ops()) op->conn = nullptr;
  pending_.clear();
  if (reading_) uv_read_stop(&h_.stream);
  reading_ = false;
  uv_close(&h_.handle, [](uv_handle_t* h) {
    auto* self = static_cast<ClientConnection*>(h->data);
    self->worker_.on_connection_closed(self);
  });
}

}  // namespace rend::worker
