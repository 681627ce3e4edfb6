// rend-loadgen engine: judging each reply against its request, and verifying values.
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

namespace {

// The outcome a text reply line means for a non-read command, or false if that command cannot
// get that reply (which then is a protocol error).
bool text_outcome(OpKind kind, const TextReply& r, Outcome& out) {
  const bool incr = kind == OpKind::kIncr || kind == OpKind::kDecr;
  switch (r.kind) {
    case TextReplyKind::kStored: out = Outcome::kStored; return is_store(kind);
    case TextReplyKind::kNotStored: out = Outcome::kNotStored; return is_store(kind);
    case TextReplyKind::kExists: out = Outcome::kExists; return is_store(kind);
    case TextReplyKind::kNotFound: out = Outcome::kNotFound; return !is_read(kind);
    case TextReplyKind::kDeleted: out = Outcome::kDeleted; return kind == OpKind::kDelete;
    case TextReplyKind::kTouched: out = Outcome::kTouched; return kind == OpKind::kTouch;
    case TextReplyKind::kNumber: out = Outcome::kNumber; return incr;
    case TextReplyKind::kClientError:
      out = incr && r.message == "cannot increment or decrement non-numeric value" ? Outcome::kNonNumeric
                                                                                   : Outcome::kErrorReply;
      return true;
    case TextReplyKind::kServerError:
      out = is_store(kind) && r.message == "object too large for cache" ? Outcome::kTooLarge : Outcome::kErrorReply;
      return true;
    case TextReplyKind::kError: out = Outcome::kErrorReply; return true;
    default: return false;
  }
}

}  // namespace

bool Worker::on_text_reply(Connection& c, const TextReply& r, int64_t now) {
  Pending& p = c.inflight.front();
  if (is_read(p.op.kind)) {
    switch (r.kind) {
      case TextReplyKind::kValue: {
        char expected[proto::kMaxKeyLength];
        size_t pos = p.cursor;
        for (; pos < p.op.nkeys; ++pos) {
          keys_.write(p.op.keys[pos], expected);
          if (r.key == std::string_view(expected, keys_.length())) break;
        }
        if (pos >= p.op.nkeys) {
          fail(c, ErrorKind::kProtocol,
               fmt::format("{} {}: VALUE for key '{}', not asked for (or out of order)", op_name(p.op.kind),
                           key_text(p.op.keys[0]), printable(r.key)),
               now);
          return false;
        }
        p.cursor = static_cast<uint8_t>(pos + 1);
        ++p.hits;
        verify(c, p, p.op.keys[pos], r.flags, r.data);
        return true;
      }
      case TextReplyKind::kEnd: complete(c, read_outcome(p), now); return true;
      case TextReplyKind::kError:
      case TextReplyKind::kClientError:
      case TextReplyKind::kServerError:
        complete(c, Outcome::kErrorReply, now, fmt::format(" ({} {})", text_reply_name(r.kind), r.message));
        return true;
      default:
        fail(
            c, ErrorKind::kProtocol,
            fmt::format("{} {}: answered with {}", op_name(p.op.kind), key_text(p.op.keys[0]), text_reply_name(r.kind)),
            now);
        return false;
    }
  }
  Outcome outcome;
  if (!text_outcome(p.op.kind, r, outcome)) {
    fail(c, ErrorKind::kProtocol,
         fmt::format("{} {}: answered with {}", op_name(p.op.kind), key_text(p.op.keys[0]), text_reply_name(r.kind)),
         now);
    return false;
  }
  if (outcome == Outcome::kErrorReply || outcome == Outcome::kTooLarge) {
    complete(c, outcome, now, fmt::format(" ({} {})", text_reply_name(r.kind), r.message));
  } else {
    complete(c, outcome, now);
  }
  return true;
}

namespace {

// The outcome a binary status means for a single-key command.
Outcome binary_outcome(OpKind kind, uint16_t status) {
  switch (kind) {
    case OpKind::kGet:
    case OpKind::kGat:
      if (status == proto::bin::kSuccess) return Outcome::kHit;
      if (status == proto::bin::kKeyNotFound) return Outcome::kMiss;
      break;
    case OpKind::kSet:
    case OpKind::kAdd:
    case OpKind::kReplace:
    case OpKind::kAppend:
    case OpKind::kPrepend:
      switch (status) {
        case proto::bin::kSuccess: return Outcome::kStored;
        case proto::bin::kKeyNotFound: return Outcome::kNotFound;
        case proto::bin::kKeyExists: return Outcome::kExists;
        case proto::bin::kNotStored: return Outcome::kNotStored;
        case proto::bin::kTooLarge: return Outcome::kTooLarge;
        default: break;
      }
      break;
    case OpKind::kDelete:
      if (status == proto::bin::kSuccess) return Outcome::kDeleted;
      if (status == proto::bin::kKeyNotFound) return Outcome::kNotFound;
      break;
    case OpKind::kTouch:
      if (status == proto::bin::kSuccess) return Outcome::kTouched;
      if (status == proto::bin::kKeyNotFound) return Outcome::kNotFound;
      break;
    case OpKind::kIncr:
    case OpKind::kDecr:
      if (status == proto::bin::kSuccess) return Outcome::kNumber;
      if (status == proto::bin::kKeyNotFound) return Outcome::kNotFound;
      if (status == proto::bin::kDeltaBadValue) return Outcome::kNonNumeric;
      break;
    case OpKind::kMultiGet: break;
  }
  return Outcome::kErrorReply;
}

}  // namespace

bool Worker::binary_protocol_error(Connection& c, const proto::BinaryResponse& r, std::string_view what, int64_t now) {
  const Pending& p = c.inflight.front();
  fail(c, ErrorKind::kProtocol,
       fmt::format("{} {}: {} (reply opcode 0x{:02x} opaque {} status 0x{:04x}; expected opcode 0x{:02x} opaque {})",
                   op_name(p.op.kind), key_text(p.op.keys[0]), what, r.header.opcode, r.header.opaque, r.status(),
                   p.opcode, p.opaque),
       now);
  return false;
}

bool Worker::on_binary_reply(Connection& c, const proto::BinaryResponse& r, int64_t now) {
  Pending& p = c.inflight.front();
  const uint16_t status = r.status();
  if (p.op.kind == OpKind::kMultiGet) return on_binary_multi_get_reply(c, r, now);
  if (r.header.opaque != p.opaque || r.header.opcode != p.opcode) {
    return binary_protocol_error(c, r, "reply for another request", now);
  }
  const bool read = p.op.kind == OpKind::kGet || p.op.kind == OpKind::kGat;
  const bool arithmetic = p.op.kind == OpKind::kIncr || p.op.kind == OpKind::kDecr;
  if (read && status == proto::bin::kSuccess) {
    if (r.extras.size() != 4) return binary_protocol_error(c, r, "hit without 4 bytes of flags", now);
    p.hits = 1;
    verify(c, p, p.op.keys[0], proto::bin::load32(r.extras.data()), r.value);
  }
  if (arithmetic && status == proto::bin::kSuccess && r.value.size() != 8) {
    return binary_protocol_error(c, r, "incr/decr reply without an 8-byte value", now);
  }
  const Outcome outcome = binary_outcome(p.op.kind, status);
  if (outcome == Outcome::kErrorReply || outcome == Outcome::kTooLarge) {
    complete(c, outcome, now, fmt::format(" (status 0x{:04x} '{}')", status, printable(r.value)));
  } else {
    complete(c, outcome, now);
  }
  return true;
}

bool Worker::on_binary_multi_get_reply(Connection& c, const proto::BinaryResponse& r, int64_t now) {
  Pending& p = c.inflight.front();
  const uint16_t status = r.status();
  if (r.header.opaque == p.opaque) {
    if (r.header.opcode != proto::bin::kNoop || status != 0)
      return binary_protocol_error(c, r, "bad end of multi-get", now);
    const Outcome outcome = read_outcome(p);
    complete(c, outcome, now, outcome == Outcome::kErrorReply ? " (an error status for a key)" : "");
    return true;
  }
  const uint32_t pos = r.header.opaque - p.first_opaque;
  if (pos >= p.op.nkeys || pos < p.cursor) return binary_protocol_error(c, r, "opaque of no outstanding key", now);
  if (r.header.opcode != proto::bin::kGetKQ) return binary_protocol_error(c, r, "wrong opcode in multi-get", now);
  p.cursor = static_cast<uint8_t>(pos + 1);
  if (status == proto::bin::kSuccess) {
    char expected[proto::kMaxKeyLength];
    keys_.write(p.op.keys[pos], expected);
    if (r.key != std::string_view(expected, keys_.length())) {
      return binary_protocol_error(c, r, "wrong key in GETKQ reply", now);
    }
    if (r.extras.size() != 4) return binary_protocol_error(c, r, "GETKQ hit without 4 bytes of flags", now);
    ++p.hits;
    verify(c, p, p.op.keys[pos], proto::bin::load32(r.extras.data()), r.value);
  } else if (status != proto::bin::kKeyNotFound) {
    p.error_reply = true;
  }
  return true;
}

void Worker::verify(Connection& c, Pending& p, uint64_t key, uint32_t flags, std::string_view data) {
  const Op& op = p.op;
  if (op.check == Check::kNone || key == c.doubtful_key) return;
  auto wrong = [&](std::string what) {
    stats_.add_error(ErrorKind::kWrongValue,
                     fmt::format("connection {}: {} {}: {}", c.id, op_name(op.kind), key_text(key), what));
  };
  const uint32_t expected_flags = ValueModel::flags(key);
  if (flags != expected_flags) {
    wrong(fmt::format("flags {}, expected {}", flags, expected_flags));
    return;
  }
  auto first_difference = [](std::string_view got, std::string_view want) {
    size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
    return i;
  };
  if (op.check == Check::kKeyed) {
    if (data.size() < op.size_min || data.size() > op.size_max) {
      wrong(fmt::format("{} bytes, expected {}..{}", data.size(), op.size_min, op.size_max));
      return;
    }
    const std::string_view want = values_.value(key, 0, data.size());
    if (std::memcmp(want.data(), data.data(), data.size()) != 0) {
      wrong(fmt::format("{} bytes differ from what was written, from byte {}", data.size(),
                        first_difference(data, want)));
    }
    return;
  }
  if (op.check == Check::kExact) {
    size_t total = 0;
    for (unsigned i = 0; i < op.nsegments; ++i) total += op.segments[i].size;
    if (data.size() != total) {
      wrong(fmt::format("{} bytes, expected {}", data.size(), total));
      return;
    }
    size_t at = 0;
    for (unsigned i = 0; i < op.nsegments; ++i) {
      const Segment& s = op.segments[i];
      const std::string_view want = values_.value(s.key, s.version, s.size);
      if (std::memcmp(want.data(), data.data() + at, s.size) != 0) {
        wrong(fmt::format("{} bytes, wrong from byte {} (got '{}', expected '{}')", total,
                          at + first_difference(data.substr(at, s.size), want),
                          printable(data.substr(at + first_difference(data.substr(at, s.size), want), 8)),
                          printable(want.substr(first_difference(data.substr(at, s.size), want), 8))));
        return;
      }
      at += s.size;
    }
  }
}

void Worker::complete(Connection& c, Outcome outcome, int64_t now, std::string_view detail) {
  Pending& p = c.inflight.front();
  const auto latency = static_cast<uint64_t>(std::max<int64_t>(0, now - p.start_ns));
  CommandStats& command = stats_.commands[static_cast<size_t>(p.op.kind)];
  ++command.ops;
  command.latency.record(latency);
  if (is_read(p.op.kind)) {
    command.keys += p.op.nkeys;
    command.hits += p.hits;
  }
  stats_.latency.record(latency);
  ++stats_.ops;
  const uint64_t key = p.op.keys[0];
  const bool accepted = (p.op.accept & bit(outcome)) != 0;
  if (is_store(p.op.kind)) {
    if (!accepted) {
      c.doubtful_key = key;
    } else if (c.doubtful_key == key) {
      c.doubtful_key = kNoKey;
    }
  }
  if (is_read(p.op.kind) && p.op.nkeys == 1 && key == c.doubtful_key) {
    ++stats_.unjudged;
  } else if (!accepted) {
    stats_.add_error(
        ErrorKind::kUnexpectedStatus,
        fmt::format("connection {}: {} {}: got {}{}, expected {}", c.id, op_name(p.op.kind), key_text(p.op.keys[0]),
                    outcome_name(outcome), detail, outcome_set_names(p.op.accept)));
  }
  last_reply_ns_ = now;
  c.inflight.pop();
}

void Worker::check_finished(Connection& c) {
  if (c.finished) return;
  const bool idle = c.exhausted && c.inflight.empty();
  const bool gone = c.state == ConnState::kDead || (c.exhausted && c.state != ConnState::kReady);
  if (idle || gone) {
    c.finished = true;
    --active_;
  }
}

}  // namespace rend::loadgen
