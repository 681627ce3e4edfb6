#include "tests/unit/worker/fake_backend.h"

#include <charconv>

#include "common/protocol/binary_format.h"
#include "common/protocol/binary_parser.h"

namespace rend::worker::testing {

namespace bin = proto::bin;

uint32_t SeenRequest::flags() const { return extras.size() >= 4 ? bin::load32(extras.data()) : 0; }

uint32_t SeenRequest::exptime() const {
  if (extras.size() == 8) return bin::load32(extras.data() + 4);    // set/add/replace: flags, exptime
  if (extras.size() == 4) return bin::load32(extras.data());        // touch/gat/flush
  if (extras.size() == 20) return bin::load32(extras.data() + 16);  // incr/decr: delta, initial, exptime
  return 0;
}

namespace {

// The requests in `bytes`, which the worker composed (so they are well formed).
std::vector<SeenRequest> decode_requests(const std::string& bytes) {
  std::vector<SeenRequest> out;
  size_t at = 0;
  while (at + bin::kHeaderSize <= bytes.size()) {
    const char* p = bytes.data() + at;
    SeenRequest r;
    r.opcode = static_cast<uint8_t>(p[1]);
    const uint16_t key_length = bin::load16(p + 2);
    const uint8_t extras_length = static_cast<uint8_t>(p[4]);
    r.data_type = static_cast<uint8_t>(p[5]);
    const uint32_t body = bin::load32(p + 8);
    r.opaque = bin::load32(p + 12);
    r.cas = bin::load64(p + 16);
    const char* b = p + bin::kHeaderSize;
    r.extras.assign(b, extras_length);
    r.key.assign(b + extras_length, key_length);
    r.value.assign(b + extras_length + key_length, body - extras_length - key_length);
    out.push_back(std::move(r));
    at += bin::kHeaderSize + body;
  }
  return out;
}

bool is_read(uint8_t loud) {
  switch (loud) {
    case bin::kGet:
    case bin::kGetK:
    case bin::kGetE:
    case bin::kGat:
    case bin::kGatK:
    case bin::kTouch: return true;
    default: return false;
  }
}

std::string status_packet(uint8_t opcode, uint32_t opaque, uint16_t status) {
  std::string out;
  bin::append_packet(out, bin::kResponseMagic, opcode, status, opaque, 0, {}, {}, bin::status_message(status));
  return out;
}

}  // namespace

FakeBackend::FakeBackend(uv_loop_t* loop, std::string name) : loop_(loop), name_(std::move(name)) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

FakeBackend::~FakeBackend() = default;

void FakeBackend::shutdown() {
  up_ = false;
  fail_outstanding(BackendFailure::kUnavailable, false);
}

void FakeBackend::expect(std::shared_ptr<Op> op, uint32_t tag, ExpectKind kind, MetricCommand) {
  Expectation e{std::move(op), tag, kind, decode_requests(out_)};
  out_.clear();
  for (const SeenRequest& r : e.requests) seen.push_back(r);
  inbox_.push_back(std::move(e));
  schedule();
}

void FakeBackend::schedule() {
  if (held_ || inbox_.empty()) return;
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<FakeBackend*>(t->data)->deliver_all(); }, 0, 0);
}

void FakeBackend::release() {
  held_ = false;
  schedule();
}

void FakeBackend::deliver_all() {
  // What the ops send while reacting is answered on a later turn, as a socket would.
  std::deque<Expectation> now;
  now.swap(inbox_);
  while (!now.empty() && !held_) {
    Expectation e = std::move(now.front());
    now.pop_front();
    answer(e);
  }
  // Held meanwhile: keep the rest, ahead of anything newer.
  for (auto it = now.rbegin(); it != now.rend(); ++it) inbox_.push_front(std::move(*it));
  schedule();
}

void FakeBackend::fail_outstanding(BackendFailure why, bool applied) {
  std::deque<Expectation> failed;
  failed.swap(inbox_);
  for (Expectation& e : failed) {
    if (applied) {
      for (const SeenRequest& r : e.requests) apply(r);
    }
    e.op->on_failure(e.tag, why);
  }
}

void FakeBackend::bury(std::string key) {
  items[key] = FakeItem{"", 0, 0, next_cas_++};  // the tombstone: an item too short to be a value
  buried.push_back(std::move(key));
}

void FakeBackend::bury_all() {
  items.clear();
  ++bury_all_calls;
}

std::vector<SeenRequest> FakeBackend::seen_for(const std::string& key) const {
  std::vector<SeenRequest> out;
  for (const SeenRequest& r : seen) {
    if (r.key == key) out.push_back(r);
  }
  return out;
}

void FakeBackend::apply(const SeenRequest& r) { respond(r); }

void FakeBackend::answer(const Expectation& e) {
  std::string packets;
  for (const SeenRequest& r : e.requests) packets += respond(r);
  std::string_view rest(packets);
  while (!rest.empty()) {
    proto::BinaryResponse response;
    size_t used = 0;
    proto::parse_binary_response(std::span<const char>(rest.data(), rest.size()), 1 << 30, response, used);
    rest.remove_prefix(used);
    switch (e.kind) {
      case ExpectKind::kSingle: e.op->on_response(e.tag, response); break;
      case ExpectKind::kUntilNoop:
        if (response.header.opcode == bin::kNoop) {
          e.op->on_complete(e.tag);
        } else {
          e.op->on_response(e.tag, response);
        }
        break;
      case ExpectKind::kUntilStatEnd:
        e.op->on_response(e.tag, response);
        if (response.key.empty() || response.status() != bin::kSuccess) e.op->on_complete(e.tag);
        break;
      case ExpectKind::kMeta:
      case ExpectKind::kMetaUntilMn: break;  // the fake speaks the binary protocol only
    }
  }
}

std::string FakeBackend::respond(const SeenRequest& r) {
  const uint8_t loud = bin::loud_opcode(r.opcode);
  const bool quiet = bin::is_quiet_opcode(r.opcode);
  if (status_override) {
    if (auto status = status_override(r))
      return quiet && *status == bin::kSuccess ? "" : status_packet(r.opcode, r.opaque, *status);
  }
  if (r.opcode == bin::kGetEQ) return respond_read(r, bin::kGetE);
  if (is_read(loud)) return respond_read(r, loud);
  switch (loud) {
    case bin::kSet:
    case bin::kAdd:
    case bin::kReplace:
    case bin::kAppend:
    case bin::kPrepend:
    case bin::kDelete: return respond_store(r, loud);
    case bin::kIncrement:
    case bin::kDecrement: return respond_arithmetic(r, loud);
    case bin::kFlush: items.clear(); return quiet ? "" : status_packet(r.opcode, r.opaque, bin::kSuccess);
    case bin::kStat: {  // no statistics: only the end of the listing
      std::string out;
      bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, 0, {}, {}, {});
      return out;
    }
    default: return status_packet(r.opcode, r.opaque, bin::kSuccess);  // noop, and anything else
  }
}

std::string FakeBackend::respond_read(const SeenRequest& r, uint8_t loud) {
  const bool quiet = bin::is_quiet_opcode(r.opcode) || r.opcode == bin::kGetEQ;
  auto it = items.find(r.key);
  if (it == items.end()) return quiet ? "" : status_packet(r.opcode, r.opaque, bin::kKeyNotFound);
  FakeItem& item = it->second;
  if (loud == bin::kGat || loud == bin::kGatK || loud == bin::kTouch) item.exptime = r.exptime();
  char extras[8];
  bin::store32(extras, item.flags);
  bin::store32(extras + 4, item.exptime);
  std::string out;
  const uint8_t opcode = loud == bin::kGetE ? static_cast<uint8_t>(bin::kGetE) : r.opcode;
  const std::string_view key = loud == bin::kGetK || loud == bin::kGatK ? std::string_view(r.key) : std::string_view();
  const std::string_view value = loud == bin::kTouch ? std::string_view() : std::string_view(item.value);
  bin::append_packet(out, bin::kResponseMagic, opcode, bin::kSuccess, r.opaque, item.cas,
                     std::string_view(extras, loud == bin::kGetE ? 8 : 4), key, value);
  return out;
}

std::string FakeBackend::respond_store(const SeenRequest& r, uint8_t loud) {
  const bool quiet = bin::is_quiet_opcode(r.opcode);
  auto it = items.find(r.key);
  const bool exists = it != items.end();
  uint16_t status = bin::kSuccess;
  if (r.cas != 0 && !exists) {
    status = bin::kKeyNotFound;
  } else if (r.cas != 0 && it->second.cas != r.cas) {
    status = bin::kKeyExists;
  } else if (loud == bin::kAdd && exists) {
    status = bin::kKeyExists;
  } else if ((loud == bin::kReplace || loud == bin::kDelete) && !exists) {
    status = bin::kKeyNotFound;
  } else if ((loud == bin::kAppend || loud == bin::kPrepend) && !exists) {
    status = bin::kNotStored;
  }
  if (status != bin::kSuccess) return status_packet(r.opcode, r.opaque, status);
  uint64_t cas = 0;
  if (loud == bin::kDelete) {
    items.erase(it);
  } else if (loud == bin::kAppend || loud == bin::kPrepend) {
    FakeItem& item = it->second;
    item.value = loud == bin::kAppend ? item.value + r.value : r.value + item.value;
    cas = item.cas = next_cas_++;
  } else {
    cas = next_cas_++;
    items[r.key] = FakeItem{r.value, r.flags(), r.exptime(), cas};
  }
  const uint8_t data_type =
      (r.data_type & bin::kDataTypeTrackRaces) != 0 && raced_keys.count(r.key) != 0 ? bin::kDataTypeRacedWrite : 0;
  if (quiet) return "";
  std::string out;
  bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, cas, {}, {}, {}, data_type);
  return out;
}

std::string FakeBackend::respond_arithmetic(const SeenRequest& r, uint8_t loud) {
  const uint64_t delta = bin::load64(r.extras.data());
  const uint64_t initial = bin::load64(r.extras.data() + 8);
  auto it = items.find(r.key);
  uint64_t value = 0;
  if (it == items.end()) {
    if (r.exptime() == 0xffffffff) return status_packet(r.opcode, r.opaque, bin::kKeyNotFound);
    value = initial;
  } else {
    const std::string& v = it->second.value;
    if (std::from_chars(v.data(), v.data() + v.size(), value).ec != std::errc()) {
      return status_packet(r.opcode, r.opaque, bin::kDeltaBadValue);
    }
    value = loud == bin::kIncrement ? value + delta : (delta > value ? 0 : value - delta);
  }
  const uint64_t cas = next_cas_++;
  items[r.key] = FakeItem{std::to_string(value), it == items.end() ? 0 : it->second.flags, r.exptime(), cas};
  char number[8];
  bin::store64(number, value);
  std::string out;
  bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, cas, {}, {},
                     std::string_view(number, 8));
  return out;
}

}  // namespace rend::worker::testing
