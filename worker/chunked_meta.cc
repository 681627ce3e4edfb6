// ChunkedCommand's meta commands: l1only with chunked L1, where memcached's own meta commands
// cannot see values stored as heads and chunks. The value is read whole, common/meta_rules.h
// decides as rend-l2 does in the tiered modes, and the outcome is written conditionally on the
// head's CAS (read again if another worker changed it). The marks live in the head
// (chunk_format.h), so stampede protection holds across workers.
//
// Rewriting a head gives it a new memcached CAS, where memcached changes none for a read's marks.
// So the hit-before mark is not kept (a rewrite on every value's first read would change its CAS
// under every client holding it; mg h and me fetch read 0/no), and a win token's rewrite answers
// the winner with the new CAS. Nor are the last-access time (mg l, me la: 0) and memcached's slab
// class and item size (me cls=0, size: the value's) kept.
#include <string>

#include "common/meta_rules.h"
#include "common/protocol/meta_command.h"
#include "common/protocol/meta_wire.h"
#include "worker/chunked_command.h"
#include "worker/worker.h"

namespace rend::worker {

using proto::Command;

MetaChange ChunkedCommand::decide_meta(uint64_t cas_for_new_value, uint64_t current_cas) {
  rend::Item item;
  item.meta.flags = head_.flags;
  item.meta.expiry = head_.expiry;
  item.meta.cas = current_cas;
  item.meta.marks = head_.marks & ~kMarkFetched;  // not kept (see above)
  item.meta.stored_at = meta_now_;                // not kept: every access reads as "just now"
  item.data = current_;
  const rend::Item* current = complete_ ? &item : nullptr;
  MetaChange c;
  if (req_.command == Command::kMetaDebug) {
    c.reply.code = current != nullptr ? MetaCode::kDebug : MetaCode::kMiss;
    c.reply.bytes = meta_debug_reply(key_, current, meta_now_, current != nullptr ? current_.size() : 0);
    return c;
  }
  proto::MetaOptions options;
  std::string_view error;
  if (!proto::parse_meta_options(req_.command, {}, req_.meta_flags, options, error)) {
    c.reply.code = MetaCode::kError;
    c.reply.bytes = std::string(error) + "\r\n";
    return c;
  }
  const MetaRequest q{req_.command, &options, req_.meta_flags, key_, value_};
  return apply_meta(q, current, meta_now_, worker_.config().worker.max_item_size,
                    [cas_for_new_value] { return cas_for_new_value; });
}

void ChunkedCommand::meta_after_read() {
  meta_now_ = unix_now();
  meta_ = decide_meta(0, head_cas_);
  const bool read = req_.command == Command::kMetaGet;
  const bool only_fetched = read && meta_.write == Change::Write::kPut && complete_ && meta_.item.data == current_ &&
                            meta_.item.meta.expiry == head_.expiry &&
                            (meta_.item.meta.marks & ~kMarkFetched) == (head_.marks & ~kMarkFetched);
  if (only_fetched) meta_.write = Change::Write::kNone;  // see above: a read's mark is not kept
  meta_.item.meta.marks &= ~kMarkFetched;
  switch (meta_.write) {
    case Change::Write::kNone: respond_meta(); return;
    case Change::Write::kPut: {
      const Item& next = meta_.item;
      const bool same_value = read && complete_ && next.data == current_ && next.meta.expiry == head_.expiry &&
                              next.meta.flags == head_.flags;
      if (same_value) {
        write_head_only(next);
        return;
      }
      write_item(next.meta.flags, next.meta.expiry, next.data, head_present_ ? bin::kSet : bin::kAdd,
                 head_present_ ? head_cas_ : 0, false, next.meta.marks);
      return;
    }
    case Change::Write::kDelete: {
      proto::Request del;
      del.command = Command::kDelete;
      del.opcode = bin::kDelete;
      del.key = key_;
      del.cas = head_cas_;
      send(del, kDeleteHead, MetricCommand::kDelete);
      return;
    }
  }
}

void ChunkedCommand::write_head_only(const Item& item) {
  proto::Request set;
  const std::string bytes =
      layout().encode_head(key_, current_, item.meta.flags, item.meta.expiry, head_.token, item.meta.marks);
  set.command = Command::kSet;
  set.opcode = bin::kSet;
  set.exptime = item.meta.expiry;
  set.key = key_;
  set.value = bytes;
  set.cas = head_cas_;
  send(set, kHeadOnlyWrite, MetricCommand::kSet);
}

void ChunkedCommand::head_only_written(const proto::BinaryResponse& r) {
  const uint16_t s = r.status();
  if (s == bin::kSuccess) {
    new_cas_ = r.header.cas;
    head_only_written_ = true;
    respond_meta();
  } else if ((s == bin::kKeyExists || s == bin::kKeyNotFound) && attempts_ < kMaxAttempts) {
    read();  // another worker changed the key since we read it: judge again
  } else {
    respond_status(s);
  }
}

void ChunkedCommand::respond_meta() {
  // A write's reply carries the CAS memcached gave the new head: decide again with it (the
  // rules are a pure function of the same item and clock, so the outcome is the same).
  // An mg (its marks rewritten, its TTL, an item it created) reports the head's new CAS as the
  // item's; the other commands report it as the one their write was given.
  const bool reports_item_cas = head_only_written_ || req_.command == Command::kMetaGet;
  const MetaChange& c = meta_.write != Change::Write::kPut ? meta_
                        : reports_item_cas                 ? decide_meta(new_cas_, new_cas_)
                                                           : decide_meta(new_cas_, head_cas_);
  proto::MetaSummary s;
  s.code = static_cast<uint8_t>(c.reply.code);
  s.has_item = c.reply.has_item;
  s.clean = c.reply.clean;
  s.changed = c.write != Change::Write::kNone;
  s.suppressible = c.reply.suppressible;
  s.flags = c.reply.meta.flags;
  s.expiry = c.reply.meta.expiry;
  s.cas = c.reply.meta.cas;
  std::string packet;
  bin::append_packet(packet, bin::kResponseMagic, bin::kMeta, bin::kSuccess, 0, 0, proto::encode_meta_summary(s), {},
                     c.reply.bytes);
  deliver(packet);
}

}  // namespace rend::worker
