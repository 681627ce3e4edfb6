// The tiered read path: a KeyRead per key, interpreting its ReadRule (tier_rules.h).
#include "worker/tiered_paths.h"

#include <fmt/format.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/get_reply_limit.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/command_traits.h"
#include "common/protocol/request_compose.h"
#include "worker/backend_pool.h"
#include "worker/client_connection.h"
#include "worker/key_lock.h"
#include "worker/l1_access.h"
#include "worker/l1_envelope.h"
#include "worker/metric_mapping.h"
#include "worker/reply.h"
#include "worker/tier_rules.h"
#include "worker/tiered_steps.h"
#include "worker/worker.h"

namespace rend::worker {
namespace {

using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

class MultiRead;

// One key read through the tiers. Either answers the client itself (binary, or a text read of
// one key) or reports to the MultiRead it belongs to.
class KeyRead : public Op {
 public:
  KeyRead(Worker& w, const ReadRule& rule, const Request& r, std::string_view key, std::shared_ptr<MultiRead> parent)
      : worker_(w),
        rule_(rule),
        to_(r),
        key_(key),
        exptime_(r.exptime),
        parent_(std::move(parent)),
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
    switch (tag) {
      case kL1Read: on_l1_read(r); return;
      case kRestoreTombstone: return;  // the read goes on; only a failure needs handling
      case kL1Touch: on_l1_touch(r); return;
      case kL2Read:
      case kL1Fallback: on_read_answer(tag == kL1Fallback, r); return;
      case kL2Touch: on_l2_touch(r); return;
      case kBackfill: on_backfill(r); return;
      default: release(); return;
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
        worker_.l1().bury(key_);
        release();
        return;
      case kRestoreTombstone: worker_.l1().bury(key_); return;  // the read goes on
      case kBackfill:
        bump(worker_.stats(), Counter::backfill_errors);
        release();
        return;
      default: release(); return;
    }
  }

  Outcome outcome() const { return outcome_; }
  const Item& item() const { return item_; }
  BackendFailure why() const { return why_; }
  const std::string& key() const { return key_; }

 private:
  enum Tag : uint32_t {
    kL1Read = 1,
    kL2Read,
    kL1Fallback,
    kBackfill,
    kL2Touch,
    kL1Touch,
    kRestoreTombstone,
    kSideEffect
  };

  std::shared_ptr<Op> shared_from_op();

  // A gat changes the item's TTL in both tiers, in steps (one tier, then the other): like a
  // write, it has the key alone, so a read after it (even of the same line) sees it done.
  bool exclusive() const { return is_touching(to_.command); }

  void on_l1_read(const proto::BinaryResponse& r) {
    const uint16_t status = r.status();
    if (status == bin::kSuccess && l1_envelope_valid(r.value)) {
      item_.flags = proto::response_flags(r);
      item_.cas = l1_envelope_cas(r.value);
      item_.value.assign(l1_envelope_value(r.value));
      deliver(Outcome::kHit);
      if (rule_.touch_l2_on_l1_hit) {
        Request touch = wire_request(Command::kTouch, bin::kTouch, key_);
        touch.exptime = exptime_;
        touch.track_races = true;
        worker_.l2().send(touch, shared_from_op(), kL2Touch);
        return;
      }
      release();
      return;
    }
    if (status == bin::kSuccess && is_touching(to_.command)) {
      // The L1 gat found a tombstone and gave it the client's TTL: it gets its own back
      // (the backfill after the L2 read then fails on it, as it should).
      send_l1(worker_, l1_tombstone_request(key_, worker_.config()), shared_from_op(), kRestoreTombstone);
    }
    // Only the reads that backfill tell the admission about their misses: a batch-port read of
    // a key does not make it worth a place in L1.
    if (rule_.after_l2_hit == L1Step::kAdd) admitted_ = worker_.admission().admit(key_, uv_hrtime() / 1000000);
    read_l2();
  }

  // The L1 step of a gat that asked L2 first: a tombstone it touched keeps its short TTL.
  void on_l1_touch(const proto::BinaryResponse& r) {
    if (r.status() == bin::kSuccess && !l1_envelope_valid(r.value)) {
      bury_l1_copy();
      return;
    }
    release();
  }

  // L2's answer to the read, or (L2 unreachable) L1's.
  void on_read_answer(bool from_l1, const proto::BinaryResponse& r) {
    const uint16_t status = r.status();
    if (!from_l1) bury_again_if_raced(worker_, key_, r);  // a gat changes L2's expiry
    if (status != bin::kSuccess || (from_l1 && !l1_envelope_valid(r.value))) {
      deliver(status == bin::kSuccess || status == bin::kKeyNotFound ? Outcome::kMiss : Outcome::kFailed);
      if (!from_l1 && status == bin::kKeyNotFound && rule_.after_l2_miss == L1Step::kTombstone && !l1_read_done_) {
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
    no_copy_ = !from_l1 && (r.header.data_type & bin::kDataTypeNoCopy) != 0;
    if (r.extras.size() >= 8) item_.expiry = bin::load32(r.extras.data() + 4);
    item_.value.assign(from_l1 ? l1_envelope_value(r.value) : r.value);
    deliver(Outcome::kHit);
    if (from_l1) {
      release();
    } else {
      after_l2_hit();
    }
  }

  void on_l2_touch(const proto::BinaryResponse& r) {
    bury_again_if_raced(worker_, key_, r);
    // The client has its L1 hit, but L2 no longer holds the item (evicted, expired, flushed):
    // the L1 copy whose TTL the gat just extended must go too.
    if (r.status() == bin::kKeyNotFound) {
      bury_l1_copy();
      return;
    }
    release();
  }

  void on_backfill(const proto::BinaryResponse& r) {
    // "Exists" means a concurrent write got there first (or left a tombstone): that is the add
    // doing its job.
    const uint16_t status = r.status();
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
  }

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
    worker_.l2().send(w, shared_from_op(), kL2Read);
  }

  void after_l2_hit() {
    // A tombstone outlives a backfill only if the backfill comes soon after L2 read the item
    // (l1_envelope.h): an answer later than L2's timeout (a busy connection still delivering)
    // is served but not backfilled.
    const uint64_t l2_timeout_ms = static_cast<uint64_t>(worker_.config().l2.backend.timeout_ms);
    const bool timely = (uv_hrtime() - l2_sent_ns_) / 1000000 <= l2_timeout_ms;
    if (rule_.after_l2_hit == L1Step::kAdd && l1_read_done_ && !l1_failed_ && timely && !no_copy_) {
      if (!admitted_) {
        bump(worker_.stats(), Counter::backfills_skipped);  // served, not copied (backfill_admission.h)
        release();
        return;
      }
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
  void bury_l1_copy() { send_l1(worker_, l1_tombstone_request(key_, worker_.config()), shared_from_op(), kSideEffect); }

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
  bool dropped_ = false;     // a child hit past its MultiRead's reply cap
  uint64_t l2_sent_ns_ = 0;  // uv_hrtime when the L2 read was sent
  bool l1_failed_ = false;
  bool no_copy_ = false;  // L2 said the item carries meta marks: served, never backfilled
  bool l1_read_done_ = false;
  bool admitted_ = true;  // the admission's answer to this read's L1 miss
  bool delivered_ = false;
};

// A text read of several keys: one KeyRead per key, answered in key order.
class MultiRead : public Op {
 public:
  MultiRead(Worker& w, const Request& r, size_t keys)
      : worker_(w),
        to_(r),
        reads_(keys),
        outstanding_(keys),
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

}  // namespace

void start_tiered_read(Worker& worker, ClientConnection& conn, const Request& r, const ReadRule& rule) {
  if (r.protocol == Protocol::kBinary || r.command == Command::kGetE) {
    auto op = std::make_shared<KeyRead>(worker, rule, r, r.key, nullptr);
    op->self_weak_ = op;
    track_request(worker, *op, r);
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
    track_request(worker, *op, r);
    conn.enqueue(op);
    op->start();
    return;
  }
  auto multi = std::make_shared<MultiRead>(worker, r, keys.size());
  track_request(worker, *multi, r);
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

}  // namespace rend::worker
