// rend-loadgen engine: the meta protocol (memcached 1.6's mg ms md ma mn), composed and judged.
//
// Each Op becomes the meta request a client would send for it:
//   get       mg <key> v f                       VA <n> f<flags> + data | EN
//   gat       mg <key> v f T<exptime>            VA <n> f<flags> + data | EN
//   touch     mg <key> T<exptime>                HD | EN
//   multi-get mg <key> v f k q  (one per key)    VA <n> f<flags> k<key> + data per hit (misses are
//             mn                                 quiet), then MN
//   set etc.  ms <key> <n> F<flags> T<exptime>   HD | NS | EX | NF
//             (add ME, replace MR, append MA, prepend MP)
//   delete    md <key>                           HD | NF
//   incr/decr ma <key> D<delta> v  (decr: MD)    VA <n> + the number | NF
// A reply must carry exactly the return flags asked for, in the order asked (as memcached sends
// them): anything else, or a code the command cannot get, is a protocol error. ERROR,
// CLIENT_ERROR and SERVER_ERROR lines are error replies, except the two that mean an outcome
// (non-numeric incr/decr, object too large), as in text.
#include <fmt/core.h>

#include <charconv>

#include "common/protocol/response_parser.h"
#include "loadgen/engine_internal.h"

namespace rend::loadgen {

namespace {

void append_number(std::string& out, uint64_t v) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
  (void)ec;
  out.append(digits, static_cast<size_t>(end - digits));
}

std::string_view store_mode(OpKind kind) {
  switch (kind) {
    case OpKind::kAdd: return " ME";
    case OpKind::kReplace: return " MR";
    case OpKind::kAppend: return " MA";
    case OpKind::kPrepend: return " MP";
    default: return {};  // set: the default mode
  }
}

// The return flags a request asks for, in the order it asks for them.
std::string_view return_flags(OpKind kind) {
  switch (kind) {
    case OpKind::kGet:
    case OpKind::kGat: return "f";
    case OpKind::kMultiGet: return "fk";
    default: return {};
  }
}

struct ReturnedFlags {
  uint32_t flags = 0;
  std::string_view key;
};

// Null when `tokens` are exactly the return flags `expected`, one token each, in that order;
// otherwise what is wrong with them.
const char* parse_returned_flags(std::string_view tokens, std::string_view expected, ReturnedFlags& out) {
  size_t index = 0;
  while (!tokens.empty()) {
    const size_t space = tokens.find(' ');
    const std::string_view token = tokens.substr(0, space);
    tokens = space == std::string_view::npos ? std::string_view() : tokens.substr(space + 1);
    if (token.empty()) return "an empty flag token";
    if (index >= expected.size() || token[0] != expected[index]) return "a flag not asked for, or out of order";
    const std::string_view arg = token.substr(1);
    if (token[0] == 'f') {
      const auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), out.flags);
      if (arg.empty() || ec != std::errc() || ptr != arg.data() + arg.size()) return "client flags that are not a u32";
    } else if (token[0] == 'k') {
      if (arg.empty()) return "an empty key";
      out.key = arg;
    }
    ++index;
  }
  return index == expected.size() ? nullptr : "a flag asked for is missing";
}

bool is_number(std::string_view s) {
  if (s.empty() || s.size() > 20) return false;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
  }
  return true;
}

// The outcome a meta status code means for a non-read command, or false if that command cannot
// get that code.
bool meta_outcome(OpKind kind, std::string_view code, Outcome& out) {
  if (is_store(kind)) {
    if (code == "HD")
      out = Outcome::kStored;
    else if (code == "NS")
      out = Outcome::kNotStored;
    else if (code == "EX")
      out = Outcome::kExists;
    else if (code == "NF")
      out = Outcome::kNotFound;
    else
      return false;
    return true;
  }
  switch (kind) {
    case OpKind::kDelete:
      out = code == "HD" ? Outcome::kDeleted : Outcome::kNotFound;
      return code == "HD" || code == "NF";
    case OpKind::kTouch:
      out = code == "HD" ? Outcome::kTouched : Outcome::kNotFound;
      return code == "HD" || code == "EN";
    case OpKind::kIncr:
    case OpKind::kDecr: out = code == "VA" ? Outcome::kNumber : Outcome::kNotFound; return code == "VA" || code == "NF";
    default: return false;
  }
}

}  // namespace

void Worker::compose_meta(Connection& c, const Pending& p) {
  const Op& op = p.op;
  const size_t key_length = keys_.length();
  char* key = c.keys_scratch;
  std::string& out = c.wbuf;
  if (op.kind == OpKind::kMultiGet) {
    for (unsigned i = 0; i < op.nkeys; ++i) {
      keys_.write(op.keys[i], key);
      out += "mg ";
      out.append(key, key_length);
      out += " v f k q\r\n";
    }
    out += "mn\r\n";
    return;
  }
  keys_.write(op.keys[0], key);
  switch (op.kind) {
    case OpKind::kGet:
    case OpKind::kGat:
    case OpKind::kTouch: out += "mg "; break;
    case OpKind::kDelete: out += "md "; break;
    case OpKind::kIncr:
    case OpKind::kDecr: out += "ma "; break;
    default: out += "ms "; break;
  }
  out.append(key, key_length);
  if (op.kind == OpKind::kGet || op.kind == OpKind::kGat) out += " v f";
  if (op.kind == OpKind::kGat || op.kind == OpKind::kTouch) {
    out += " T";
    append_number(out, op.exptime);
  }
  if (op.kind == OpKind::kIncr || op.kind == OpKind::kDecr) {
    out += " D";
    append_number(out, op.delta);
    out += op.kind == OpKind::kDecr ? " MD v" : " v";
  }
  if (!is_store(op.kind)) {
    out += "\r\n";
    return;
  }
  out += ' ';
  append_number(out, op.value.size());
  out += " F";
  append_number(out, op.flags);
  out += " T";
  append_number(out, op.exptime);
  out += store_mode(op.kind);
  out += "\r\n";
  out += op.value;
  out += "\r\n";
}

bool Worker::meta_protocol_error(Connection& c, const proto::MetaResponse& r, std::string_view what, int64_t now) {
  const Pending& p = c.inflight.front();
  fail(c, ErrorKind::kProtocol,
       fmt::format("{} {}: {} (reply '{}')", op_name(p.op.kind), key_text(p.op.keys[0]), what, printable(r.bytes)),
       now);
  return false;
}

bool Worker::on_meta_error(Connection& c, const proto::MetaResponse& r, int64_t now) {
  Pending& p = c.inflight.front();
  std::string_view line = r.bytes.substr(0, r.bytes.size() - 2);
  const std::string_view message = line.size() > r.code.size() ? line.substr(r.code.size() + 1) : std::string_view();
  if (p.op.kind == OpKind::kMultiGet) {  // one key's error: the batch goes on to its MN
    p.error_reply = true;
    return true;
  }
  Outcome outcome = Outcome::kErrorReply;
  const bool arithmetic = p.op.kind == OpKind::kIncr || p.op.kind == OpKind::kDecr;
  if (arithmetic && r.code == "CLIENT_ERROR" && message == "cannot increment or decrement non-numeric value") {
    outcome = Outcome::kNonNumeric;
  } else if (is_store(p.op.kind) && r.code == "SERVER_ERROR" && message == "object too large for cache") {
    outcome = Outcome::kTooLarge;
  }
  complete(c, outcome, now,
           outcome == Outcome::kNonNumeric ? std::string() : fmt::format(" ({})", printable(line, 120)));
  return true;
}

bool Worker::on_meta_read_reply(Connection& c, const proto::MetaResponse& r, int64_t now) {
  Pending& p = c.inflight.front();
  const bool multi = p.op.kind == OpKind::kMultiGet;
  if (r.code == (multi ? "MN" : "EN")) {
    if (!r.flags.empty()) return meta_protocol_error(c, r, "flags on a miss or an end that asked for none", now);
    if (multi) {
      const Outcome outcome = read_outcome(p);
      complete(c, outcome, now, outcome == Outcome::kErrorReply ? " (an error reply for a key)" : "");
    } else {
      complete(c, Outcome::kMiss, now);
    }
    return true;
  }
  if (r.code != "VA") return meta_protocol_error(c, r, "not a meta get's reply", now);
  ReturnedFlags returned;
  if (const char* wrong = parse_returned_flags(r.flags, return_flags(p.op.kind), returned)) {
    return meta_protocol_error(c, r, wrong, now);
  }
  size_t pos = p.cursor;
  if (multi) {
    char expected[proto::kMaxKeyLength];
    for (; pos < p.op.nkeys; ++pos) {
      keys_.write(p.op.keys[pos], expected);
      if (returned.key == std::string_view(expected, keys_.length())) break;
    }
    if (pos >= p.op.nkeys) return meta_protocol_error(c, r, "a value for a key not asked for (or out of order)", now);
  }
  p.cursor = static_cast<uint8_t>(pos + 1);
  ++p.hits;
  verify(c, p, p.op.keys[pos], returned.flags, r.data);
  if (!multi) complete(c, Outcome::kHit, now);
  return true;
}

bool Worker::on_meta_reply(Connection& c, const proto::MetaResponse& r, int64_t now) {
  Pending& p = c.inflight.front();
  if (r.is_error) return on_meta_error(c, r, now);
  const OpKind kind = p.op.kind;
  if (kind == OpKind::kGet || kind == OpKind::kGat || kind == OpKind::kMultiGet) return on_meta_read_reply(c, r, now);
  Outcome outcome;
  if (!meta_outcome(kind, r.code, outcome)) return meta_protocol_error(c, r, "a code this command cannot get", now);
  if (!r.flags.empty()) return meta_protocol_error(c, r, "flags that were not asked for", now);
  if (outcome == Outcome::kNumber && !is_number(r.data)) {
    return meta_protocol_error(c, r, "incr/decr value that is not a decimal number", now);
  }
  complete(c, outcome, now);
  return true;
}

}  // namespace rend::loadgen
