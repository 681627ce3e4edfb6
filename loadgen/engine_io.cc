// rend-loadgen engine: composing and sending requests, receiving and framing replies.
#include "loadgen/engine_internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/core.h>
#include <liburing.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

#include "common/protocol/binary_format.h"
#include "common/protocol/request_compose.h"
#include "common/protocol/response_parser.h"

namespace rend::loadgen {

using proto::Protocol;
using proto::ResponseParse;
using proto::TextReply;
using proto::TextReplyKind;

// ---- sending ----------------------------------------------------------------------------------

void Worker::mark_dirty(Connection& c) {
  if (c.dirty) return;
  c.dirty = true;
  dirty_.push_back(&c);
}

// Sends as many requests as the connection may now: up to the pipeline depth in a closed loop,
// those that are due in an open loop.
void Worker::issue(Connection& c, int64_t now) {
  if (c.state != ConnState::kReady || c.exhausted) return;
  const PhasePlan& plan = *plan_;
  while (!c.inflight.full()) {
    int64_t start = now;
    if (open_loop_) {
      if (c.next_due_ns > now) break;
      start = c.next_due_ns;
    } else if (stopped_) {
      c.exhausted = true;
      break;
    }
    if (c.quota == 0) {
      c.exhausted = true;
      break;
    }
    Pending& p = c.inflight.push();
    p.op = Op{};
    if (!plan.workload->next(c.cursor, c.rng, p.op)) {
      // Take the slot back: it was never sent.
      c.inflight.drop_last();
      c.exhausted = true;
      break;
    }
    if (c.quota != UINT64_MAX) --c.quota;
    p.start_ns = start;
    p.sent_ns = now;
    if (open_loop_) stats_.send_lag.record(static_cast<uint64_t>(now - start));
    p.cursor = 0;
    p.hits = 0;
    p.error_reply = false;
    compose(c, p);
    mark_dirty(c);
    if (open_loop_) {
      ++c.scheduled;
      c.next_due_ns = c.due_base_ns + static_cast<int64_t>(static_cast<double>(c.scheduled) * c.interval_ns);
      if (plan.end_ns != 0 && c.next_due_ns >= plan.end_ns) {
        c.exhausted = true;
        break;
      }
    }
    if (c.quota == 0) {
      c.exhausted = true;
      break;
    }
  }
  if (open_loop_ && !c.exhausted && !c.inflight.full()) earliest_due_ = std::min(earliest_due_, c.next_due_ns);
}

void Worker::compose(Connection& c, Pending& p) {
  if (options_.protocol == WireProtocol::kMeta) {
    compose_meta(c, p);
    return;
  }
  const Op& op = p.op;
  proto::Request r;
  const size_t key_length = keys_.length();
  char* scratch = c.keys_scratch;
  keys_.write(op.keys[0], scratch);
  const std::string_view key(scratch, key_length);
  r.key = key;
  r.value = op.value;
  r.flags = op.flags;
  r.exptime = op.exptime;
  r.delta = op.delta;
  switch (op.kind) {
    case OpKind::kGet: r.command = proto::Command::kGet; break;
    case OpKind::kMultiGet: r.command = proto::Command::kGet; break;
    case OpKind::kGat: r.command = proto::Command::kGat; break;
    case OpKind::kSet: r.command = proto::Command::kSet; break;
    case OpKind::kAdd: r.command = proto::Command::kAdd; break;
    case OpKind::kReplace: r.command = proto::Command::kReplace; break;
    case OpKind::kAppend: r.command = proto::Command::kAppend; break;
    case OpKind::kPrepend: r.command = proto::Command::kPrepend; break;
    case OpKind::kDelete: r.command = proto::Command::kDelete; break;
    case OpKind::kTouch: r.command = proto::Command::kTouch; break;
    case OpKind::kIncr: r.command = proto::Command::kIncr; break;
    case OpKind::kDecr: r.command = proto::Command::kDecr; break;
  }

  if (options_.protocol == WireProtocol::kText) {
    r.protocol = Protocol::kText;
    if (op.kind == OpKind::kMultiGet) {
      size_t at = key_length;
      for (unsigned i = 1; i < op.nkeys; ++i) {
        scratch[at++] = ' ';
        keys_.write(op.keys[i], scratch + at);
        at += key_length;
      }
      r.keys = std::string_view(scratch, at);
    } else {
      r.keys = key;
    }
    proto::compose_text_request(r, c.wbuf);
    return;
  }

  r.protocol = Protocol::kBinary;
  if (op.kind == OpKind::kMultiGet) {
    // GETKQ per key (hits only come back, each with its key) and a NOOP that ends the batch.
    p.first_opaque = c.next_opaque;
    r.quiet = true;
    r.return_key = true;
    for (unsigned i = 0; i < op.nkeys; ++i) {
      keys_.write(op.keys[i], scratch);
      r.key = key;
      r.opaque = c.next_opaque++;
      proto::compose_binary_request(r, c.wbuf);
    }
    proto::Request noop;
    noop.protocol = Protocol::kBinary;
    noop.command = proto::Command::kNoop;
    noop.opaque = p.opaque = c.next_opaque++;
    p.opcode = proto::bin::kNoop;
    proto::compose_binary_request(noop, c.wbuf);
    return;
  }
  if (op.kind == OpKind::kIncr || op.kind == OpKind::kDecr) {
    r.initial = 0;
    r.create_exptime = 0xffffffff;  // a miss stays a miss, as in text
  }
  r.opaque = p.opaque = c.next_opaque++;
  p.opcode = proto::binary_opcode_for(r.command, false, false);
  proto::compose_binary_request(r, c.wbuf);
}

// At most one send per connection in flight: everything composed since the last one goes out with
// the next, queued here (at the end of a loop turn) and submitted by the turn's wait.
void Worker::flush(Connection& c) {
  if (c.state != ConnState::kReady || c.sending_now) return;
  if (c.sent == c.sending.size()) {
    c.sending.clear();
    c.sent = 0;
    std::swap(c.sending, c.wbuf);
  }
  if (c.sending.empty()) return;
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_send(sqe, c.fd, c.sending.data() + c.sent, c.sending.size() - c.sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, io_tag(c.slot, kSendOp));
  c.sending_now = true;
  ++ops_in_flight_;
  ++sends_queued_;
}

void Worker::on_sent(Connection& c, int result, int64_t now) {
  c.sending_now = false;
  if (c.state != ConnState::kReady) {  // failed meanwhile: the bytes are moot
    c.sending.clear();
    c.sent = 0;
    return;
  }
  if (result < 0) {
    fail(c, ErrorKind::kConnection, fmt::format("send: {}", std::strerror(-result)), now);
    return;
  }
  c.sent += static_cast<size_t>(result);
  // The rest of a short send, or what was composed meanwhile.
  if (c.sent < c.sending.size() || !c.wbuf.empty()) mark_dirty(c);
}

// ---- receiving --------------------------------------------------------------------------------

// One recv in flight per ready connection while a phase runs, into the free end of its buffer.
void Worker::arm_recv(Connection& c) {
  if (c.receiving) return;
  if (c.rbuf.size() - c.rend < kMinRead) {
    if (c.rbegin > 0) {
      std::memmove(c.rbuf.data(), c.rbuf.data() + c.rbegin, c.rend - c.rbegin);
      c.rend -= c.rbegin;
      c.rbegin = 0;
    }
    if (c.rbuf.size() - c.rend < kMinRead) c.rbuf.resize(c.rbuf.size() * 2);
  }
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_recv(sqe, c.fd, c.rbuf.data() + c.rend, c.rbuf.size() - c.rend, 0);
  // The reply to what was just sent is rarely there yet: wait for data before trying to read.
  sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  io_uring_sqe_set_data64(sqe, io_tag(c.slot, kRecvOp));
  c.receiving = true;
  ++ops_in_flight_;
}

void Worker::on_received(Connection& c, int result, int64_t now) {
  c.receiving = false;
  if (c.state != ConnState::kReady || result == -ECANCELED) return;
  if (result == 0) {
    fail(c, ErrorKind::kConnection,
         c.inflight.empty() ? "closed by the server" : "closed by the server with requests in flight", now);
    return;
  }
  if (result < 0) {
    if (result == -EINTR || result == -EAGAIN) {
      if (running_) arm_recv(c);
      return;
    }
    fail(c, ErrorKind::kConnection, fmt::format("recv: {}", std::strerror(-result)), now);
    return;
  }
  c.rend += static_cast<size_t>(result);

  while (c.rbegin < c.rend) {
    const std::span<const char> input(c.rbuf.data() + c.rbegin, c.rend - c.rbegin);
    if (c.inflight.empty()) {
      fail(c, ErrorKind::kProtocol,
           fmt::format("reply with no request outstanding: '{}'",
                       printable(std::string_view(input.data(), input.size()))),
           now);
      return;
    }
    size_t consumed = 0;
    ResponseParse parsed;
    bool ok = false;
    if (options_.protocol == WireProtocol::kText) {
      TextReply reply;
      parsed = proto::parse_text_response(input, kMaxReplyBody, reply, consumed);
      if (parsed == ResponseParse::kOk) ok = on_text_reply(c, reply, now);
    } else if (options_.protocol == WireProtocol::kMeta) {
      proto::MetaResponse reply;
      parsed = proto::parse_meta_response(input, kMaxReplyBody, reply, consumed);
      if (parsed == ResponseParse::kOk) ok = on_meta_reply(c, reply, now);
    } else {
      proto::BinaryResponse reply;
      parsed = proto::parse_binary_response(input, kMaxReplyBody, reply, consumed);
      if (parsed == ResponseParse::kOk) ok = on_binary_reply(c, reply, now);
    }
    if (parsed == ResponseParse::kNeedMore) break;
    if (parsed != ResponseParse::kOk) {
      fail(c, ErrorKind::kProtocol,
           fmt::format("unparseable reply: '{}'", printable(std::string_view(input.data(), input.size()))), now);
      return;
    }
    if (!ok) return;  // the connection failed (and was reset)
    c.rbegin += consumed;
  }
  if (c.rbegin == c.rend) c.rbegin = c.rend = 0;
  if (running_) {
    arm_recv(c);
    issue(c, now);
    check_finished(c);
  }
}

}  // namespace rend::loadgen
