// The tiered write path: a TieredWrite, interpreting its WriteRule (tier_rules.h).
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

namespace bin = proto::bin;
using proto::Command;
using proto::Protocol;
using proto::Request;

namespace {

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
        case kFollowNone: complete(); return;
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
        const bool touched_tombstone =
            status == bin::kSuccess && l1_update_.opcode == bin::kGat && !l1_envelope_valid(r.value);
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
        worker_.l1().bury(key_);
        worker_.bury_after_race_window(key_);
      }
      complete();
      return;
    }
    // L1 failed after L2 took the write: the write stands (L2 is authoritative). But memcached
    // may be alive (a timeout, a dropped connection) and still hold the old value, so the key
    // is buried as soon as that connection is back, before anything else is sent on it.
    worker_.l1().bury(key_);
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
    worker_.l2().send_composed(key_, l2_request_, shared_self(), kL2, metric_command_for_opcode(l2_opcode_));
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
      case L1Step::kNone: return;  // L2 changed the value (and CAS) where L1 cannot follow, or nothing to follow
    }
    // The value goes in L1's envelope; its CAS is known once L2 has answered.
    l1_value_ = l1_envelope(0, r.value);
    has_envelope_ = true;
    l1.value = l1_value_;
    l1_update_ = l1;
  }

  // The row's L1 step for what L2 answered.
  L1Step l1_step_after_l2() const {
    switch (l2_status_) {
      case bin::kSuccess: return rule_.after_l2_success;
      case bin::kKeyNotFound:
      case bin::kKeyExists:
      case bin::kNotStored:
      case bin::kDeltaBadValue: return rule_.after_l2_refusal;
      default: return rule_.after_l2_error;
    }
  }

  Follow l1_follow_up() const {
    // Invalidate: reads go to L2 until the tombstone expires, then backfill the new value.
    switch (l1_step_after_l2()) {
      case L1Step::kSet:
      case L1Step::kReplace:
      case L1Step::kTouch: return kFollowUpdate;
      case L1Step::kTombstone: return kFollowInvalidate;
      case L1Step::kAdd:
      case L1Step::kNone: return kFollowNone;
    }
    return kFollowNone;
  }

  void count_result_l2() {
    WorkerSlot& s = worker_.stats();
    const bool ok = l2_status_ == bin::kSuccess;
    switch (to_.command) {
      case Command::kTouch: bump(s, ok ? Counter::touch_hits : Counter::touch_misses); break;
      case Command::kIncr:
        bump(s, ok ? Counter::incr_hits : Counter::incr_misses, ok || l2_status_ == bin::kKeyNotFound);
        break;
      case Command::kDecr:
        bump(s, ok ? Counter::decr_hits : Counter::decr_misses, ok || l2_status_ == bin::kKeyNotFound);
        break;
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
      append_status_reply(reply, to_, bin::kTooLarge, too_large_text_);
      return;
    }
    if (failure_) {
      result = Result::kError;
      append_failure(reply, to_, *failure_);
      return;
    }
    uint16_t status = l2_status_;
    if (to_.command == Command::kDelete && status == bin::kKeyNotFound && l1_had_copy_) {
      status = bin::kSuccess;  // L1 held a copy L2 had lost: it is gone now, and that is a delete
    }
    if (to_.command == Command::kDelete)
      bump(worker_.stats(), status == bin::kSuccess ? Counter::delete_hits : Counter::delete_misses);
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

}  // namespace

void start_tiered_write(Worker& worker, ClientConnection& conn, const Request& r, const WriteRule& rule) {
  auto op = std::make_shared<TieredWrite>(worker, rule, r);
  op->self_weak_ = op;
  // memcached drops the old value of a set that was too large; L2 holds the value, so both go.
  if (r.command == Command::kTooLarge) op->set_too_large(r.error_text);
  track_request(worker, *op, r);
  conn.enqueue(op);
  op->start();
}

}  // namespace rend::worker
