#include "worker/tiered.h"

#include <fmt/format.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/get_reply_limit.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/command_traits.h"
#include "common/protocol/request_compose.h"
#include "worker/backend_connection.h"
#include "worker/backend_pool.h"
#include "worker/client_connection.h"
#include "worker/key_lock.h"
#include "worker/l1_access.h"
#include "worker/l1_envelope.h"
#include "worker/metric_mapping.h"
#include "worker/reply.h"
#include "worker/tier_rules.h"
#include "worker/worker.h"

namespace rend::worker {
namespace {

using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

struct Item {
  uint32_t flags = 0;
  uint64_t cas = 0;
  uint32_t expiry = 0;  // absolute unix seconds, 0 = never (from L2's GetE)
  std::string value;
};

enum class Outcome : uint8_t { kHit, kMiss, kFailed };

Request wire_request(Command command, uint8_t opcode, std::string_view key) {
  Request w;
  w.command = command;
  w.opcode = opcode;
  w.key = key;
  return w;
}

// Sends `bytes` (one composed request) to the connection `key` maps to in `pool`. A backend that
// is down fails the step at once, through the same path as a connection that breaks later.
void send(BackendPool& pool, std::string_view key, std::string_view bytes, const std::shared_ptr<Op>& op,
          uint32_t tag, MetricCommand command) {
  BackendConnection& b = pool.for_key(key);
  if (!b.accepting()) {
    op->on_failure(tag, BackendFailure::kUnavailable);
    return;
  }
  b.out().append(bytes);
  b.expect(op, tag, ExpectKind::kSingle, command);
}

void send(BackendPool& pool, const Request& wire, const std::shared_ptr<Op>& op, uint32_t tag) {
  std::string bytes;
  proto::compose_binary_request(wire, bytes);
  send(pool, wire.key, bytes, op, tag, metric_command_for_opcode(wire.opcode));
}

// rend-l2 flags a tracked write that came within the race window after another worker's
// tracked access to the key, a write or a read it backfills (l2/write_history.h): that worker's
// L1 step may land after ours, so L1's copy is buried again once the window has passed.
void bury_again_if_raced(Worker& worker, std::string_view key, const proto::BinaryResponse& r) {
  if ((r.header.data_type & bin::kDataTypeRacedWrite) == 0) return;
  bump(worker.stats(), Counter::raced_writes);
  worker.bury_after_race_window(std::string(key));
}

// Whether an L1 step that has just completed landed as soon after the L2 request it follows
// (sent at `l2_sent_ns`, uv_hrtime) as common/race_window.h assumes. One that did not (a stalled
// worker, a slow memcached) may have landed after a racing worker's delayed burial, so the
// caller buries the key itself.
bool landed_in_time(Worker& worker, uint64_t l2_sent_ns) {
  const Config& c = worker.config();
  const uint64_t limit_ms = static_cast<uint64_t>(c.l1.timeout_ms) + static_cast<uint64_t>(c.l2.backend.timeout_ms);
  return (uv_hrtime() - l2_sent_ns) / 1000000 <= limit_ms;
}

bool is_touching(Command c) { return proto::traits(c).touches; }
bool wants_cas(Command c) { return proto::traits(c).returns_cas; }

// ---- reads -------------------------------------------------------------------------------------

class MultiRead;

// One key read through the tiers. Either answers the client itself (binary, or a text read of
// one key) or reports to the MultiRead it belongs to.
class KeyRead : public Op {
 public:
  KeyRead(Worker& w, const ReadRule& rule, const Request& r, std::string_view key, std::shared_ptr<MultiRead> parent)
      : worker_(w), rule_(rule), to_(r), key_(key), exptime_(r.exptime), parent_(std::move(parent)),
        child_(parent_ != nullptr) {}

  void start() {
    auto self = std::static_pointer_cast<KeyRead>(shared_from_op());
    if (!worker_.config().worker.key_ordering) {
      begin();
      return;
    }
    locked_ = true;
    worker_.key_lock().acquire(key_, exclusive(), [self] { self->begin(); });
  }

  void on_response(uint32_t tag, const proto::BinaryResponse& r) override {
    const uint16_t status = r.status();
    switch (tag) {
      case kL1Read:
        if (status == bin::kSuccess && l1_envelope_valid(r.value)) {
          item_.flags = proto::response_flags(r);
          item_.cas = l1_envelope_cas(r.value);
          item_.value.assign(l1_envelope_value(r.value));
          deliver(Outcome::kHit);
          if (rule_.touch_l2_on_l1_hit) {
            Request touch = wire_request(Command::kTouch, bin::kTouch, key_);
            touch.exptime = exptime_;
            touch.track_races = true;
            send(worker_.l2(), touch, shared_from_op(), kL2Touch);
            return;
          }
          release();
        } else {
          if (status == bin::kSuccess && is_touching(to_.command)) {
            // The L1 gat found a tombstone and gave it the client's TTL: it gets its own back
            // (the backfill after the L2 read then fails on it, as it should).
            send_l1(worker_, l1_tombstone_request(key_, worker_.config()), shared_from_op(), kRestoreTombstone);
          }
          read_l2();
        }
        return;
      case kRestoreTombstone:
        return;  // the read goes on; only a failure needs handling
      case kL1Touch:
        // The batch port's L1 step of a gat: a tombstone it touched keeps its short TTL.
        if (status == bin::kSuccess && !l1_envelope_valid(r.value)) {
          bury_l1_copy();
          return;
        }
        release();
        return;
      case kL2Read:
      case kL1Fallback: {
        const bool from_l1 = tag == kL1Fallback;
        if (!from_l1) bury_again_if_raced(worker_, key_, r);  // a gat changes L2's expiry
        if (status != bin::kSuccess || (from_l1 && !l1_envelope_valid(r.value))) {
          deliver(status == bin::kSuccess || status == bin::kKeyNotFound ? Outcome::kMiss : Outcome::kFailed);
          if (!from_l1 && status == bin::kKeyNotFound && rule_.after_l2_miss == L1Step::kTombstone &&
              !l1_read_done_) {
            // A gat asked L2 first and L2 has lost the item: L1's copy, if any, must not live on
            // (a gat asking L1 first would have found it there).
            bury_l1_copy();
            return;
          }
          release();
          return;
        }
        item_.flags = proto::response_flags(r);
        item_.cas = from_l1 ? l1_envelope_cas(r.value) : r.header.cas;
        if (r.extras.size() >= 8) item_.expiry = bin::load32(r.extras.data() + 4);
        item_.value.assign(from_l1 ? l1_envelope_value(r.value) : r.value);
        deliver(Outcome::kHit);
        if (tag == kL2Read) after_l2_hit();
        else release();
        return;
      }
      case kL2Touch:
        bury_again_if_raced(worker_, key_, r);
        // The client has its L1 hit, but L2 no longer holds the item (evicted, expired, flushed):
        // the L1 copy whose TTL the gat just extended must go too.
        if (status == bin::kKeyNotFound) {
          bury_l1_copy();
          return;
        }
        release();
        return;
      case kBackfill:
        // "Exists" means a concurrent write got there first (or left a tombstone): that is the
        // add doing its job.
        if (status == bin::kSuccess) {
          bump(worker_.stats(), Counter::backfills);
          if (!landed_in_time(worker_, l2_sent_ns_)) {
            bury_l1_copy();
            return;
          }
        } else if (status != bin::kKeyExists) {
          bump(worker_.stats(), Counter::backfill_errors);
        }
        release();
        return;
      default:
        release();
        return;
    }
  }

  void on_failure(uint32_t tag, BackendFailure why) override {
    switch (tag) {
      case kL1Read:
        l1_failed_ = true;
        read_l2();
        return;
      case kL2Read:
        if (!l1_failed_ && !l1_read_done_ && rule_.l2_down == L2Down::kL1Answers) {
          // L2 is unreachable: L1 alone answers, and we count that it did.
          bump(worker_.stats(), Counter::l2_fallbacks);
          read_l1(kL1Fallback);
          return;
        }
        if (l1_read_done_ && !l1_failed_) {
          bump(worker_.stats(), Counter::l2_fallbacks);
          deliver(Outcome::kMiss);
        } else {
          why_ = why;
          deliver(Outcome::kFailed);
        }
        release();
        return;
      case kL1Fallback:
        why_ = why;
        deliver(Outcome::kFailed);
        release();
        return;
      case kSideEffect:
      case kL1Touch:
        // An L1 touch or burial that did not arrive: a copy L2 no longer backs may remain.
        worker_.l1().for_key(key_).bury(key_);
        release();
        return;
      case kRestoreTombstone:
        worker_.l1().for_key(key_).bury(key_);
        return;  // the read goes on
      case kBackfill:
        bump(worker_.stats(), Counter::backfill_errors);
        release();
        return;
      default:
        release();
        return;
    }
  }

  Outcome outcome() const { return outcome_; }
  const Item& item() const { return item_; }
  BackendFailure why() const { return why_; }
  const std::string& key() const { return key_; }

 private:
  enum Tag : uint32_t { kL1Read = 1, kL2Read, kL1Fallback, kBackfill, kL2Touch, kL1Touch, kRestoreTombstone, kSideEffect };

  std::shared_ptr<Op> shared_from_op();

  // A gat changes the item's TTL in both tiers, in steps (one tier, then the other): like a
  // write, it has the key alone, so a read after it (even of the same line) sees it done.
  bool exclusive() const { return is_touching(to_.command); }

  void begin() {
    if (rule_.first == FirstTier::kL1) {
      read_l1(kL1Read);
    } else {
      read_l2();
    }
  }

  void read_l1(uint32_t tag) {
    l1_read_done_ = true;
    Request w = wire_request(is_touching(to_.command) ? Command::kGat : Command::kGet,
                             is_touching(to_.command) ? bin::kGatK : bin::kGetK, key_);
    w.exptime = exptime_;
    send_l1(worker_, w, shared_from_op(), tag);
  }

  void read_l2() {
    Request w;
    switch (rule_.l2_read) {
      case L2Read::kGatK:
        w = wire_request(Command::kGat, bin::kGatK, key_);
        w.exptime = exptime_;
        break;
      case L2Read::kGetE: w = wire_request(Command::kGetE, bin::kGetE, key_); break;
      case L2Read::kGetK: w = wire_request(Command::kGet, bin::kGetK, key_); break;
    }
    // rend-l2 notes the accesses whose outcome may end up in L1 (a backfill, a gat's TTL), so
    // that a write racing them on another worker is flagged (l2/write_history.h).
    w.track_races = rule_.track_races;
    l2_sent_ns_ = uv_hrtime();
    send(worker_.l2(), w, shared_from_op(), kL2Read);
  }

  void after_l2_hit() {
    // A tombstone outlives a backfill only if the backfill comes soon after L2 read the item
    // (l1_envelope.h): an answer later than L2's timeout (a busy connection still delivering)
    // is served but not backfilled.
    const uint64_t l2_timeout_ms = static_cast<uint64_t>(worker_.config().l2.backend.timeout_ms);
    const bool timely = (uv_hrtime() - l2_sent_ns_) / 1000000 <= l2_timeout_ms;
    if (rule_.after_l2_hit == L1Step::kAdd && l1_read_done_ && !l1_failed_ && timely) {
      // Backfill: L2's absolute expiry keeps the L1 copy from outliving the L2 item; `add` never
      // replaces a value a concurrent write has just stored.
      Request add = wire_request(Command::kAdd, bin::kAdd, key_);
      add.flags = item_.flags;
      add.exptime = is_touching(to_.command) ? exptime_ : item_.expiry;
      const std::string stored = l1_envelope(item_.cas, item_.value);
      add.value = stored;
      send_l1(worker_, add, shared_from_op(), kBackfill);
      return;
    }
    if (rule_.after_l2_hit == L1Step::kTouch && !l1_read_done_) {
      // The L2 touch happened; L1's copy (if any) gets the same TTL. A gat, not a touch, to see
      // whether that copy is a tombstone.
      Request touch = wire_request(Command::kGat, bin::kGat, key_);
      touch.exptime = exptime_;
      send_l1(worker_, touch, shared_from_op(), kL1Touch);
      return;
    }
    release();
  }

  void deliver(Outcome outcome);

  // A tombstone, not a delete, so that a concurrent read's backfill cannot bring it back.
  void bury_l1_copy() {
    send_l1(worker_, l1_tombstone_request(key_, worker_.config()), shared_from_op(), kSideEffect);
  }

  void release() {
    // A direct read's reply has its copy and any backfill has been sent; a child read's value
    // waits for its MultiRead to compose the reply.
    if (!child_ || dropped_) item_.value = std::string();
    if (locked_) {
      locked_ = false;
      worker_.key_lock().release(key_, exclusive());
    }
    self_.reset();
  }

 public:
  std::shared_ptr<Op> self_;  // keeps a child read alive while it is not in a client queue

 private:
  Worker& worker_;
  ReadRule rule_;
  ReplyTo to_;
  std::string key_;
  uint32_t exptime_;
  std::shared_ptr<MultiRead> parent_;
  bool child_;
  Item item_;
  Outcome outcome_ = Outcome::kMiss;
  BackendFailure why_ = BackendFailure::kUnavailable;
  bool locked_ = false;
  bool dropped_ = false;  // a child hit past its MultiRead's reply cap
  uint64_t l2_sent_ns_ = 0;  // uv_hrtime when the L2 read was sent
  bool l1_failed_ = false;
  bool l1_read_done_ = false;
  bool delivered_ = false;
};

// A text read of several keys: one KeyRead per key, answered in key order.
class MultiRead : public Op {
 public:
  MultiRead(Worker& w, const Request& r, size_t keys)
      : worker_(w), to_(r), reads_(keys), outstanding_(keys),
        budget_(max_get_reply_bytes(w.config().worker.max_item_size, w.config().worker.output_high_water)) {}

  // A child's hit of `bytes` joins the reply: false once the reply would pass the cap (see
  // common/get_reply_limit.h), and the child then lets its value go.
  bool hold(size_t key_size, size_t bytes) {
    const size_t need = bytes + text_hit_overhead(key_size);
    if (too_large_ || need > budget_) {
      too_large_ = true;
      return false;
    }
    budget_ -= need;
    return true;
  }

  void set_read(size_t i, std::shared_ptr<KeyRead> read) { reads_[i] = std::move(read); }

  void key_done() {
    if (--outstanding_ > 0) return;
    if (too_large_) {
      result = Result::kError;
      proto::append_line(reply, kGetReplyTooLarge);
      reads_.clear();
      finish();
      return;
    }
    for (const auto& r : reads_) {
      if (r->outcome() == Outcome::kFailed) {
        result = Result::kError;
        proto::append_line(reply, text_failure(r->why()));
        finish();
        return;
      }
    }
    result = Result::kMiss;
    for (const auto& r : reads_) {
      const bool hit = r->outcome() == Outcome::kHit;
      bump(worker_.stats(), hit ? Counter::get_hits : Counter::get_misses);
      if (is_touching(to_.command)) bump(worker_.stats(), hit ? Counter::touch_hits : Counter::touch_misses);
      if (!hit) continue;
      result = Result::kHit;
      proto::append_text_value(reply, r->key(), r->item().flags, r->item().value, wants_cas(to_.command),
                               r->item().cas);
    }
    proto::append_line(reply, "END");
    reads_.clear();
    finish();
  }

 private:
  Worker& worker_;
  ReplyTo to_;
  std::vector<std::shared_ptr<KeyRead>> reads_;
  size_t outstanding_;
  size_t budget_;  // reply bytes still allowed
  bool too_large_ = false;
};

std::shared_ptr<Op> KeyRead::shared_from_op() {
  // Ops are always owned by a shared_ptr: either the client queue's or self_ (child reads).
  return self_ ? self_ : self_weak_.lock();
}

void KeyRead::deliver(Outcome outcome) {
  if (delivered_) return;
  delivered_ = true;
  outcome_ = outcome;
  if (parent_) {
    auto parent = std::move(parent_);
    // Over the reply cap the value is dropped once any backfill has been sent (release()).
    if (outcome == Outcome::kHit && !parent->hold(key_.size(), item_.value.size())) dropped_ = true;
    parent->key_done();
    return;
  }
  // A read answering the client directly.
  if (outcome == Outcome::kHit) {
    bump(worker_.stats(), Counter::get_hits);
  } else if (outcome == Outcome::kMiss) {
    bump(worker_.stats(), Counter::get_misses);
  }
  result = outcome == Outcome::kHit ? Result::kHit : outcome == Outcome::kMiss ? Result::kMiss : Result::kError;
  if (to_.protocol == Protocol::kBinary) {
    if (outcome == Outcome::kHit) {
      if (to_.command == Command::kGetE) {
        char extras[8];
        bin::store32(extras, item_.flags);
        bin::store32(extras + 4, item_.expiry);
        bin::append_packet(reply, bin::kResponseMagic, bin::kGetE, bin::kSuccess, to_.opaque, item_.cas,
                           std::string_view(extras, 8), {}, item_.value);
      } else {
        append_binary_get_hit(reply, to_.opcode, to_.opaque, item_.cas, item_.flags, key_, item_.value);
      }
    } else if (outcome == Outcome::kMiss) {
      if (!to_.quiet) append_binary_get_miss(reply, to_.opcode, to_.opaque, key_);
    } else {
      proto::append_binary_status(reply, to_.opcode, to_.opaque, binary_failure(why_));
    }
  } else if (outcome == Outcome::kHit) {
    proto::append_text_value(reply, key_, item_.flags, item_.value, wants_cas(to_.command), item_.cas);
    proto::append_line(reply, "END");
  } else if (outcome == Outcome::kMiss) {
    proto::append_line(reply, "END");
  } else {
    proto::append_line(reply, text_failure(why_));
  }
  finish();
}

// ---- writes ------------------------------------------------------------------------------------

// A write through the tiers: L2 first; if L2 took it, L1 is brought in line.
class TieredWrite : public Op {
 public:
  TieredWrite(Worker& w, const WriteRule& rule, const Request& r) : worker_(w), rule_(rule), to_(r), key_(r.key) {
    build_requests(r);
  }

  void start() {
    auto self = shared_self();
    if (!worker_.config().worker.key_ordering) {
      begin();
      return;
    }
    locked_ = true;
    worker_.key_lock().acquire(key_, true, [self] { self->begin(); });
  }

  void on_response(uint32_t tag, const proto::BinaryResponse& r) override {
    if (tag == kL2) {
      bury_again_if_raced(worker_, key_, r);
      l2_status_ = r.status();
      l2_cas_ = r.header.cas;
      l2_extras_.assign(r.extras);
      l2_value_.assign(r.value);
      count_result_l2();
      switch (l1_follow_up()) {
        case kFollowNone:
          complete();
          return;
        case kFollowUpdate:
          if (has_envelope_) bin::store64(l1_value_.data(), l2_cas_);  // the CAS L2 gave this write
          send_l1(worker_, l1_update_, shared_self(), kL1Update);
          return;
        case kFollowInvalidate:
          // A delete L2 did not find is still DELETED if L1 held a copy (not a tombstone), so
          // only then is L1 asked first.
          if (is_delete() && l2_status_ != bin::kSuccess) {
            send_l1(worker_, l1_probe_, shared_self(), kL1Probe);
          } else {
            send_l1(worker_, l1_tombstone_, shared_self(), kL1Tombstone);
          }
          return;
      }
      return;
    }
    const uint16_t status = r.status();
    switch (tag) {
      case kL1Update: {
        // An L1 update that failed for any reason but "not there" leaves a stale copy: bury it.
        const bool miss = status == bin::kKeyNotFound || status == bin::kNotStored;
        const bool touched_tombstone = status == bin::kSuccess && l1_update_.opcode == bin::kGat &&
                                       !l1_envelope_valid(r.value);
        if (touched_tombstone || (status != bin::kSuccess && !(miss && rule_.l1_miss_is_fine))) {
          send_l1(worker_, l1_tombstone_, shared_self(), kL1Tombstone);
          return;
        }
        if (status == bin::kSuccess && !landed_in_time(worker_, l2_sent_ns_)) {
          send_l1(worker_, l1_tombstone_, shared_self(), kL1Tombstone);
          return;
        }
        complete();
        return;
      }
      case kL1Probe:
        l1_had_copy_ = status == bin::kSuccess && l1_envelope_valid(r.value);
        send_l1(worker_, l1_tombstone_, shared_self(), kL1Tombstone);
        return;
      case kL1Tombstone:
        // memcached could not store even an empty item (out of memory): a delete at least
        // removes whatever copy is there.
        if (status != bin::kSuccess) {
          send_l1(worker_, l1_delete_, shared_self(), kL1LastResort);
          return;
        }
        complete();
        return;
      default:
        complete();  // kL1LastResort
        return;
    }
  }

  void on_failure(uint32_t tag, BackendFailure why) override {
    if (tag == kL2) {
      bump(worker_.stats(), Counter::l2_write_failures);
      failure_ = why;
      // Refused (L2 down), the write did not happen. Timed out or cut off after it was sent, it
      // may still be applied by L2: L1's copy may then be the old value, so it goes.
      // Nor can it be told whether it raced another worker's write (bury_again_if_raced), so it
      // is buried again once the race window has passed, too.
      if (why != BackendFailure::kUnavailable) {
        worker_.l1().for_key(key_).bury(key_);
        worker_.bury_after_race_window(key_);
      }
      complete();
      return;
    }
    // L1 failed after L2 took the write: the write stands (L2 is authoritative). But memcached
    // may be alive (a timeout, a dropped connection) and still hold the old value, so the key
    // is buried as soon as that connection is back, before anything else is sent on it.
    worker_.l1().for_key(key_).bury(key_);
    complete();
  }

  // A set whose value was too large: its L2 and L1 copies go, and the client hears memcached's
  // error (`text` for a text client; a binary one gets the status).
  void set_too_large(std::string_view text) {
    too_large_ = true;
    too_large_text_ = text;
  }

 private:
  enum Tag : uint32_t { kL2 = 1, kL1Update, kL1Probe, kL1Tombstone, kL1LastResort };
  // What L1 needs once L2 has answered: nothing, the new value (or TTL), or to lose its copy.
  enum Follow : uint8_t { kFollowNone, kFollowUpdate, kFollowInvalidate };

  bool is_delete() const { return to_.command == Command::kDelete || to_.command == Command::kTooLarge; }

  std::shared_ptr<TieredWrite> shared_self() { return std::static_pointer_cast<TieredWrite>(self_weak_.lock()); }

  void begin() {
    l2_sent_ns_ = uv_hrtime();
    send(worker_.l2(), key_, l2_request_, shared_self(), kL2, metric_command_for_opcode(l2_opcode_));
  }

  void build_requests(const Request& r) {
    Request l2 = r;
    l2.protocol = Protocol::kBinary;
    l2.quiet = false;
    l2.opaque = 0;
    switch (r.command) {
      case Command::kCas:
        l2.opcode = bin::kSet;  // with the client's CAS: L2 judges it
        break;
      case Command::kTooLarge:
        l2.command = Command::kDelete;
        l2.opcode = bin::kDelete;
        break;
      default:
        l2.opcode = r.protocol == Protocol::kBinary ? bin::loud_opcode(r.opcode)
                                                     : proto::binary_opcode_for(r.command, false, false);
        break;
    }
    l2_opcode_ = l2.opcode;
    {
      // Every tiered write is tracked by rend-l2 (l2/write_history.h); the L1 requests built
      // from `l2` below are not.
      Request tracked = l2;
      tracked.track_races = true;
      proto::compose_binary_request(tracked, l2_request_);
    }

    l1_delete_ = wire_request(Command::kDelete, bin::kDelete, key_);
    l1_probe_ = wire_request(Command::kGet, bin::kGet, key_);
    l1_tombstone_ = l1_tombstone_request(key_, worker_.config());

    // The L1 update that follows a successful L2 write.
    Request l1 = l2;
    l1.key = key_;
    l1.cas = 0;  // L2 judged the CAS; L1's copy just follows
    switch (rule_.after_l2_success) {
      case L1Step::kSet:
        l1.command = Command::kSet;
        l1.opcode = bin::kSet;
        break;
      case L1Step::kReplace:
        l1.command = Command::kReplace;
        l1.opcode = bin::kReplace;
        break;
      case L1Step::kTouch:
        // A touch changes neither the value nor the CAS. A gat rather than a touch, to see
        // whether L1's copy is a tombstone, which must keep its short TTL.
        l1.command = Command::kGat;
        l1.opcode = bin::kGat;
        l1.value = {};
        l1_update_ = l1;
        return;
      case L1Step::kAdd:
      case L1Step::kTombstone:
      case L1Step::kNone:
        return;  // L2 changed the value (and CAS) where L1 cannot follow, or nothing to follow
    }
    // The value goes in L1's envelope; its CAS is known once L2 has answered.
    l1_value_ = l1_envelope(0, r.value);
    has_envelope_ = true;
    l1.value = l1_value_;
    l1_update_ = l1;
  }

  Follow l1_follow_up() const {
    // Invalidate: reads go to L2 until the tombstone expires, then backfill the new value.
    switch (l2_status_ == bin::kSuccess ? rule_.after_l2_success : rule_.after_l2_refusal) {
      case L1Step::kSet:
      case L1Step::kReplace:
      case L1Step::kTouch:
        return kFollowUpdate;
      case L1Step::kTombstone:
        return kFollowInvalidate;
      case L1Step::kAdd:
      case L1Step::kNone:
        return kFollowNone;
    }
    return kFollowNone;
  }

  void count_result_l2() {
    WorkerSlot& s = worker_.stats();
    const bool ok = l2_status_ == bin::kSuccess;
    switch (to_.command) {
      case Command::kTouch: bump(s, ok ? Counter::touch_hits : Counter::touch_misses); break;
      case Command::kIncr: bump(s, ok ? Counter::incr_hits : Counter::incr_misses, ok || l2_status_ == bin::kKeyNotFound); break;
      case Command::kDecr: bump(s, ok ? Counter::decr_hits : Counter::decr_misses, ok || l2_status_ == bin::kKeyNotFound); break;
      case Command::kCas:
        bump(s, ok ? Counter::cas_hits : l2_status_ == bin::kKeyExists ? Counter::cas_badval : Counter::cas_misses);
        break;
      default: break;
    }
  }

  void complete() {
    compose_reply();
    finish();
    if (locked_) {
      locked_ = false;
      worker_.key_lock().release(key_, true);
    }
  }

  void compose_reply() {
    const bool binary = to_.protocol == Protocol::kBinary;
    if (too_large_) {
      result = Result::kError;
      if (binary) {
        proto::append_binary_status(reply, to_.opcode, to_.opaque, bin::kTooLarge);
      } else if (!to_.quiet) {
        proto::append_line(reply, too_large_text_);
      }
      return;
    }
    if (failure_) {
      result = Result::kError;
      if (binary) {
        proto::append_binary_status(reply, to_.opcode, to_.opaque, binary_failure(*failure_));
      } else if (!to_.quiet) {
        proto::append_line(reply, text_failure(*failure_));
      }
      return;
    }
    uint16_t status = l2_status_;
    if (to_.command == Command::kDelete && status == bin::kKeyNotFound && l1_had_copy_) {
      status = bin::kSuccess;  // L1 held a copy L2 had lost: it is gone now, and that is a delete
    }
    if (to_.command == Command::kDelete) bump(worker_.stats(), status == bin::kSuccess ? Counter::delete_hits : Counter::delete_misses);
    result = result_for(metric_command, status);
    if (binary) {
      if (to_.quiet && status == bin::kSuccess) return;
      if (status == l2_status_) {
        bin::append_packet(reply, bin::kResponseMagic, to_.opcode, status, to_.opaque, l2_cas_, l2_extras_, {},
                           l2_value_);
      } else {
        proto::append_binary_status(reply, to_.opcode, to_.opaque, status);
      }
      return;
    }
    if (to_.quiet) return;
    if ((to_.command == Command::kIncr || to_.command == Command::kDecr) && status == bin::kSuccess &&
        l2_value_.size() == 8) {
      proto::append_line(reply, fmt::format("{}", bin::load64(l2_value_.data())));
      return;
    }
    proto::append_line(reply, proto::text_status_line(to_.command, status));
  }

  Worker& worker_;
  WriteRule rule_;
  ReplyTo to_;
  std::string key_;
  std::string l2_request_;
  uint64_t l2_sent_ns_ = 0;  // uv_hrtime when the L2 request was sent
  // The L1 steps; their views point into key_ and l1_value_, which live as long as the op.
  Request l1_update_;
  Request l1_delete_;
  Request l1_tombstone_;  // see l1_envelope.h
  Request l1_probe_;      // does L1 hold a copy L2 has lost?
  std::string l1_value_;
  bool has_envelope_ = false;  // l1_value_ starts with the CAS envelope, filled in after L2 answers
  uint8_t l2_opcode_ = 0;
  uint16_t l2_status_ = bin::kSuccess;
  bool l1_had_copy_ = false;
  uint64_t l2_cas_ = 0;
  std::string l2_extras_;
  std::string l2_value_;
  std::optional<BackendFailure> failure_;
  bool locked_ = false;
  bool too_large_ = false;
  std::string_view too_large_text_;
};

void track(Worker& worker, Op& op, const Request& r) {
  op.track(worker.config().metrics_enabled ? &worker.stats().requests : nullptr, metric_command_for(r.command));
}

}  // namespace

namespace {

void start_read(Worker& worker, ClientConnection& conn, const Request& r, const ReadRule& rule) {
  if (r.protocol == Protocol::kBinary || r.command == Command::kGetE) {
    auto op = std::make_shared<KeyRead>(worker, rule, r, r.key, nullptr);
    op->self_weak_ = op;
    track(worker, *op, r);
    conn.enqueue(op);
    op->start();
    return;
  }
  std::vector<std::string_view> keys;
  proto::for_each_key(r.keys, [&](std::string_view k) { keys.push_back(k); });
  bump(worker.stats(), Counter::cmd_get, keys.size());
  if (is_touching(r.command)) bump(worker.stats(), Counter::cmd_touch, keys.size());
  if (keys.size() == 1) {
    auto op = std::make_shared<KeyRead>(worker, rule, r, keys[0], nullptr);
    op->self_weak_ = op;
    track(worker, *op, r);
    conn.enqueue(op);
    op->start();
    return;
  }
  auto multi = std::make_shared<MultiRead>(worker, r, keys.size());
  track(worker, *multi, r);
  conn.enqueue(multi);
  if (keys.empty()) {
    proto::append_line(multi->reply, "END");
    multi->finish();
    return;
  }
  std::vector<std::shared_ptr<KeyRead>> reads;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto read = std::make_shared<KeyRead>(worker, rule, r, keys[i], multi);
    read->self_ = read;
    multi->set_read(i, read);
    reads.push_back(read);
  }
  for (auto& read : reads) read->start();
}

void start_write(Worker& worker, ClientConnection& conn, const Request& r, const WriteRule& rule) {
  auto op = std::make_shared<TieredWrite>(worker, rule, r);
  op->self_weak_ = op;
  // memcached drops the old value of a set that was too large; L2 holds the value, so both go.
  if (r.command == Command::kTooLarge) op->set_too_large(r.error_text);
  track(worker, *op, r);
  conn.enqueue(op);
  op->start();
}

}  // namespace

bool dispatch_tiered(Worker& worker, ClientConnection& conn, const Request& r, TierMode mode) {
  if (const auto rule = read_rule(r.command, mode)) {
    start_read(worker, conn, r, *rule);
    return true;
  }
  // Only a too-large set changes what is stored (it drops the old value); an add, replace,
  // append or prepend too large is refused and leaves the tiers alone.
  if (r.command == Command::kTooLarge && r.original != Command::kSet) return false;
  if (const auto rule = write_rule(r.command, mode)) {
    start_write(worker, conn, r, *rule);
    return true;
  }
  return false;
}

}  // namespace rend::worker
