// TieredMeta: a meta command through the tiers. L2 decides and words the reply (it keeps the
// marks that make stampede protection work across workers); L1 then follows as it does for the
// classic commands: a new value is stored, a value L1 cannot follow (append, a counter, a stale
// or token-marked item, a new TTL) is buried, and an mg that only reads what a copy holds is
// answered from L1 and backfills it.
#include "worker/tiered_meta.h"

#include <uv.h>

#include <memory>
#include <optional>
#include <string>

#include "common/meta_rules.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/meta_wire.h"
#include "common/protocol/reply_compose.h"
#include "common/protocol/text_parser.h"
#include "worker/backend_pool.h"
#include "worker/client_connection.h"
#include "worker/key_lock.h"
#include "worker/l1_access.h"
#include "worker/l1_envelope.h"
#include "worker/metric_mapping.h"
#include "worker/reply.h"
#include "worker/tiered_steps.h"
#include "worker/worker.h"

namespace rend::worker {
namespace {

using proto::Command;
using proto::MetaOptions;
using proto::Request;
namespace bin = proto::bin;

// What L1 does once L2 has answered.
enum class Follow : uint8_t { kNone, kSet, kReplace, kBackfill, kTombstone };

class TieredMeta : public Op {
 public:
  TieredMeta(Worker& w, const Request& r, TierMode mode, std::string key, const MetaOptions& o)
      : worker_(w),
        mode_(mode),
        command_(r.command),
        quiet_(r.quiet),
        key_(std::move(key)),
        flags_(r.meta_flags),
        value_(r.value),
        options_(o),
        from_copy_(r.command == Command::kMetaGet && mg_answerable_from_copy(o)) {
    options_.opaque = {};  // viewed the read buffer; the reply takes O from flags_
  }

  void start() {
    auto self = shared_self();
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
      case kL2: on_l2(r); return;
      case kL1Step: on_l1_step(r); return;
      case kL1Tombstone:
        if (r.status() != bin::kSuccess) {
          send_l1(worker_, wire_request(Command::kDelete, bin::kDelete, key_), shared_self(), kL1LastResort);
          return;
        }
        complete();
        return;
      default: complete(); return;  // kL1LastResort
    }
  }

  void on_failure(uint32_t tag, BackendFailure why) override {
    if (tag == kL1Read) {
      l1_failed_ = true;
      send_l2();
      return;
    }
    if (tag == kL2) {
      failure_ = why;
      // Sent and then lost or timed out: L2 may still apply it, and L1 may hold the old value.
      if (why != BackendFailure::kUnavailable && !from_copy_) {
        worker_.l1().bury(key_);
        worker_.bury_after_race_window(key_);
      }
      complete();
      return;
    }
    worker_.l1().bury(key_);  // an L1 step failed after L2 answered: the copy may be stale
    complete();
  }

 private:
  enum Tag : uint32_t { kL1Read = 1, kL2, kL1Step, kL1Tombstone, kL1LastResort };

  std::shared_ptr<TieredMeta> shared_self() { return std::static_pointer_cast<TieredMeta>(self_weak_.lock()); }
  // An mg answered from a copy only reads; everything else may change the item.
  bool exclusive() const { return !from_copy_; }

  void begin() {
    if (from_copy_) {
      send_l1(worker_, wire_request(Command::kGet, bin::kGetK, key_), shared_self(), kL1Read);
      return;
    }
    send_l2();
  }

  void send_l2() {
    std::string wire;
    // The flags go as sent but for q: rend hides what q hides, once it knows the outcome.
    proto::append_meta_l2_request(wire, command_, key_, proto::meta_flags_without(flags_, "q"), value_, true);
    l2_sent_ns_ = uv_hrtime();
    worker_.l2().send_composed(key_, wire, shared_self(), kL2, metric_command_for(command_));
  }

  void on_l1_read(const proto::BinaryResponse& r) {
    if (r.status() != bin::kSuccess || !l1_envelope_valid(r.value)) {
      l1_failed_ = r.status() != bin::kSuccess && r.status() != bin::kKeyNotFound;
      l1_missed_ = !l1_failed_;
      if (l1_missed_ && mode_ == TierMode::kL1L2) admitted_ = worker_.admission().admit(key_, uv_hrtime() / 1000000);
      send_l2();
      return;
    }
    rend::Item copy;
    copy.meta.flags = proto::response_flags(r);
    copy.meta.cas = l1_envelope_cas(r.value);
    // Copies are only of items without marks (item_copyable): no stale, token or base64-key bit.
    copy.data.assign(l1_envelope_value(r.value));
    MetaOptions read_only = options_;
    read_only.no_update = true;
    const MetaRequest q{command_, &read_only, flags_, key_, {}};
    const MetaChange c =
        apply_meta(q, &copy, static_cast<uint32_t>(time(nullptr)), copy.data.size(), [] { return uint64_t{0}; });
    bump(worker_.stats(), Counter::get_hits);
    reply_ = c.reply.bytes;
    result = Result::kHit;
    complete();
  }

  void on_l2(const proto::BinaryResponse& r) {
    proto::MetaSummary s;
    if (r.header.opcode != bin::kMeta || r.status() != bin::kSuccess || !proto::decode_meta_summary(r.extras, s)) {
      failure_ = BackendFailure::kLost;  // L2 could not execute it (its write failed)
      complete();
      return;
    }
    bury_again_if_raced(worker_, key_, r);
    summary_ = s;
    reply_.assign(r.value);
    result =
        static_cast<MetaCode>(s.code) == MetaCode::kError ? Result::kError : meta_result(command_, reply_.substr(0, 2));
    if (command_ == Command::kMetaGet) {
      bump(worker_.stats(), static_cast<MetaCode>(s.code) == MetaCode::kHit ? Counter::get_hits : Counter::get_misses);
    }
    follow(r.value);
  }

  Follow follow_up() const {
    const auto code = static_cast<MetaCode>(summary_.code);
    // An mg or ma answered by an error after it ran (a long opaque): what it changed, L1 loses.
    if (code == MetaCode::kError) return summary_.changed ? Follow::kTombstone : Follow::kNone;
    switch (command_) {
      case Command::kMetaGet: {
        if (code != MetaCode::kHit) return Follow::kNone;
        // A read that found no copy backfills one (l1l2 only), if it has the whole item.
        if (from_copy_ && l1_missed_ && summary_.clean && options_.return_value && mode_ == TierMode::kL1L2)
          return Follow::kBackfill;
        // A new TTL, a win token or a stale mark: a copy would answer without them.
        return summary_.changed && (options_.new_ttl || !summary_.clean) ? Follow::kTombstone : Follow::kNone;
      }
      case Command::kMetaSet: {
        if (code != MetaCode::kStored) return Follow::kNone;
        const bool whole = options_.mode != 'A' && options_.mode != 'P' && summary_.clean;
        if (!whole) return Follow::kTombstone;
        return mode_ == TierMode::kL1L2 ? Follow::kSet : Follow::kReplace;
      }
      case Command::kMetaDelete: return Follow::kTombstone;  // also a copy L2 no longer had
      case Command::kMetaArithmetic: return code == MetaCode::kHit ? Follow::kTombstone : Follow::kNone;
      default: return Follow::kNone;
    }
  }

  void follow(std::string_view l2_reply) {
    const Follow f = follow_up();
    if (f == Follow::kNone) {
      complete();
      return;
    }
    if (f == Follow::kTombstone) {
      send_l1(worker_, l1_tombstone_request(key_, worker_.config()), shared_self(), kL1Tombstone);
      return;
    }
    const uint64_t l2_timeout_ms = static_cast<uint64_t>(worker_.config().l2.backend.timeout_ms);
    if (f == Follow::kBackfill && (l1_failed_ || (uv_hrtime() - l2_sent_ns_) / 1000000 > l2_timeout_ms)) {
      complete();  // too late for the tombstones' guarantee (l1_envelope.h): served, not copied
      return;
    }
    if (f == Follow::kBackfill && !admitted_) {
      bump(worker_.stats(), Counter::backfills_skipped);  // served, not copied (backfill_admission.h)
      complete();
      return;
    }
    Request w = wire_request(f == Follow::kSet       ? Command::kSet
                             : f == Follow::kReplace ? Command::kReplace
                                                     : Command::kAdd,
                             f == Follow::kSet       ? bin::kSet
                             : f == Follow::kReplace ? bin::kReplace
                                                     : bin::kAdd,
                             key_);
    w.flags = summary_.flags;
    w.exptime = summary_.expiry;
    // An ms's value is the request's; an mg's is the data block of L2's VA reply.
    l1_value_ = l1_envelope(summary_.cas, command_ == Command::kMetaSet ? std::string_view(value_) : data_of(l2_reply));
    w.value = l1_value_;
    step_ = f;
    send_l1(worker_, w, shared_self(), kL1Step);
  }

  // The data block of a "VA <n> ...\r\n<data>\r\n" reply: its last n bytes before the final CRLF
  // (the line may hold a key with a CRLF in it, echoed by k).
  static std::string_view data_of(std::string_view va) {
    size_t n = 0;
    const size_t digits = va.find(' ', 3);
    const std::string_view size = va.substr(3, digits == std::string_view::npos ? 0 : digits - 3);
    if (!va.starts_with("VA ") || !proto::parse_u64(size, n) || va.size() < n + 2) return {};
    return va.substr(va.size() - 2 - n, n);
  }

  void on_l1_step(const proto::BinaryResponse& r) {
    const uint16_t status = r.status();
    const bool miss = status == bin::kKeyNotFound || status == bin::kNotStored;
    if (step_ == Follow::kBackfill) {
      // "Exists": a write or tombstone got there first, which is the add doing its job.
      if (status == bin::kSuccess) bump(worker_.stats(), Counter::backfills);
      const bool stale = status == bin::kSuccess && !landed_in_time(worker_, l2_sent_ns_);
      if (stale) {
        send_l1(worker_, l1_tombstone_request(key_, worker_.config()), shared_self(), kL1Tombstone);
        return;
      }
      complete();
      return;
    }
    // A set must land; a replace that finds nothing leaves nothing stale.
    const bool failed = status != bin::kSuccess && !(miss && step_ == Follow::kReplace);
    if (failed || (status == bin::kSuccess && !landed_in_time(worker_, l2_sent_ns_))) {
      send_l1(worker_, l1_tombstone_request(key_, worker_.config()), shared_self(), kL1Tombstone);
      return;
    }
    complete();
  }

  void complete() {
    if (failure_) {
      result = Result::kError;
      proto::append_line(reply, text_failure(*failure_));  // errors are never hidden by q
    } else if (!(quiet_ && summary_.suppressible)) {
      reply = std::move(reply_);
    }
    finish();
    if (locked_) {
      locked_ = false;
      worker_.key_lock().release(key_, exclusive());
    }
  }

  Worker& worker_;
  TierMode mode_;
  Command command_;
  bool quiet_;
  std::string key_;
  std::string flags_;
  std::string value_;
  MetaOptions options_;
  bool from_copy_;
  bool locked_ = false;
  bool l1_missed_ = false;
  bool admitted_ = true;  // the admission's answer to an L1 miss (backfill_admission.h)
  bool l1_failed_ = false;
  uint64_t l2_sent_ns_ = 0;
  proto::MetaSummary summary_;
  std::string reply_;
  std::string l1_value_;
  Follow step_ = Follow::kNone;
  std::optional<BackendFailure> failure_;
};

}  // namespace

void start_tiered_meta(Worker& worker, ClientConnection& conn, const Request& r, TierMode mode, const std::string& key,
                       const MetaOptions& options) {
  auto op = std::make_shared<TieredMeta>(worker, r, mode, key, options);
  op->self_weak_ = op;
  track_request(worker, *op, r);
  conn.enqueue(op);
  op->start();
}

}  // namespace rend::worker
