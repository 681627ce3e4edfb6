// Engine::run_writes: one segment of consecutive writes, in steps. Plan which keys it locks and
// reads; under their stripes, read the current items, decide every request with memcached's rules
// in request order (each sees the ones before it), write one WriteBatch and note the tracked
// writes for race detection; then, locks released, compose the replies.
#include <rocksdb/write_batch.h>

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/get_reply_limit.h"
#include "common/meta_rules.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/meta_wire.h"
#include "common/protocol/reply_compose.h"
#include "l2/engine.h"
#include "l2/reply.h"
#include "l2/segment_support.h"
#include "l2/value_format.h"

namespace rend::l2 {

using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

struct Engine::WritePlan {
  std::vector<size_t> stripes;
  std::unordered_map<std::string_view, KeyState> state;  // the keys whose current item matters
  std::vector<rocksdb::Slice> reads;                     // the same keys, in first-use order
  size_t writes = 0;
  size_t value_bytes = 0;
  bool text_gat = false;         // the segment's only write is a text gat/gats (see segment_end)
  bool reply_too_large = false;  // that gat's reply would pass the cap: nothing is applied
};

// One entry per key of each write request, in request order.
struct Engine::WriteDecisions {
  std::vector<Change> changes;
  std::vector<uint8_t> existed;  // the key had a live item (for the counters)
  std::vector<KeyOutcome> outcomes;
  std::vector<std::string_view> keys;
  std::vector<uint8_t> tracked;  // its request asked to track races
  std::vector<uint8_t> raced;    // another process accessed the key within the race window
  std::vector<MetaReply> meta;   // a meta command's reply (empty for the others)

  void add(std::string_view key, bool track, KeyOutcome outcome, Change change = {}, bool had_item = false,
           MetaReply meta_reply = {}) {
    meta.push_back(std::move(meta_reply));
    keys.push_back(key);
    tracked.push_back(track ? 1 : 0);
    outcomes.push_back(outcome);
    existed.push_back(had_item ? 1 : 0);
    changes.push_back(std::move(change));
  }
};

bool Engine::run_writes(std::span<const Request> segment, std::string& out, Where where, WriteHistory::Accessor who) {
  const bool on_loop = where == Where::kLoop;
  if (store_.read_only()) return refuse_writes(segment, out);
  WritePlan plan = plan_writes(segment);
  if (on_loop && plan.value_bytes > kInlineWriteBytes) return false;  // the WriteBatch would be too
  WriteDecisions decisions;
  rocksdb::Status written;
  {
    using Wait = KeyLocks::Guard::Wait;
    KeyLocks::Guard guard(locks_, std::move(plan.stripes), on_loop ? Wait::kTry : Wait::kBlock);
    if (!guard.locked()) return false;
    // The clock and the flush cutoffs are read only now that the stripes are ours: a segment that
    // waited for a stripe judges its items as they are when it acts (an expiry second may have
    // passed meanwhile, a flush_all may have run: it takes every stripe, see run_barrier).
    const uint32_t now = unix_now();
    const FlushState flush = store_.flush_state();
    if (!load_current(plan, now, flush, on_loop)) return false;
    rocksdb::WriteBatch batch;
    bool cas_exhausted = false;  // on the loop: the CAS lease needs renewing, a synced write
    const CasFn next_cas = [this, on_loop, &cas_exhausted]() -> uint64_t {
      if (!on_loop) return store_.next_cas();
      const std::optional<uint64_t> cas = store_.try_next_cas();
      cas_exhausted = cas_exhausted || !cas;
      return cas.value_or(0);
    };
    decide(segment, plan, now, next_cas, batch, decisions);
    if (on_loop && (cas_exhausted || batch.GetDataSize() > kInlineWriteBytes)) return false;
    written = commit(batch, on_loop);
    // Nothing was written (a stall, another writer): a worker does it all again, CAS uniques
    // included (the ones handed out here are simply never used).
    if (on_loop && written.IsIncomplete()) return false;
    // Still under the stripe locks, so two writes of a key are noted in the order RocksDB
    // applied them (a segment that wrote nothing changed nothing another worker could race).
    decisions.raced.assign(decisions.changes.size(), 0);
    if (written.ok()) note_races(decisions, who);
  }  // locks released: replies need no store access
  if (!written.ok()) stats_.add(L2Counter::l2_write_errors, plan.writes);
  stats_.add(on_loop ? L2Counter::l2_inline_writes : L2Counter::l2_offloaded_writes, plan.writes);
  reply_writes(segment, decisions, written, out);
  return true;
}

// A read-only store (its disk was full or read-only at start): every write fails at once, with
// nothing read or decided, as a failed WriteBatch would fail it.
bool Engine::refuse_writes(std::span<const Request> segment, std::string& out) {
  for (const Request& r : segment) {
    if (kind_of(r) != Kind::kWrite) {
      run_local(r, out);
      continue;
    }
    stats_.add(L2Counter::l2_write_errors);
    append_failure(out, r, "write error");
  }
  return true;
}

Engine::WritePlan Engine::plan_writes(std::span<const Request> segment) {
  WritePlan plan;
  for (const Request& r : segment) {
    if (kind_of(r) != Kind::kWrite) continue;
    ++plan.writes;
    plan.value_bytes += r.value.size();
    plan.text_gat = plan.text_gat || is_text_multi(r);
    for_each_request_key(r, [&](std::string_view k) {
      plan.stripes.push_back(locks_.stripe(k));
      if (needs_current(r) && plan.state.try_emplace(k).second) plan.reads.emplace_back(k.data(), k.size());
    });
  }
  return plan;
}

bool Engine::load_current(WritePlan& plan, uint32_t now, const FlushState& flush, bool on_loop) {
  SegmentReads stored(store_, std::move(plan.reads));
  if (on_loop && !stored.read_all_from_memory()) return false;
  // A text gat's reply holds each of its live items at least once: once the distinct ones pass
  // the cap, the reply would too, and the rest need not be read into memory at all.
  size_t live_bytes = 0;
  for (size_t i = 0; i < stored.size() && !plan.reply_too_large; ++i) {
    stored.fetch(i);
    const std::string_view key = stored.key(i);
    KeyState& ks = plan.state[key];
    ItemMeta meta;
    std::string_view data;
    const Found f = classify(stored.status(i), stored.value(i), flush, now, meta, data);
    if (f == Found::kError) ks.error = true;
    if (f != Found::kLive) continue;
    ks.item = Item{meta, std::string(data)};
    live_bytes += text_value_bytes(key, data.size());
    plan.reply_too_large = plan.text_gat && live_bytes > info_.max_get_reply;
  }
  return true;
}

void Engine::decide(std::span<const Request> segment, WritePlan& plan, uint32_t now, const CasFn& next_cas,
                    rocksdb::WriteBatch& batch, WriteDecisions& decisions) {
  std::string encoded;
  for (const Request& r : segment) {
    if (kind_of(r) != Kind::kWrite) continue;
    if (is_text_multi(r) && !plan.reply_too_large) {
      // The items a gat returns are the ones there now (it changes only their expiry).
      size_t reply_bytes = 0;
      for_each_request_key(r, [&](std::string_view k) {
        const auto it = plan.state.find(k);
        if (it != plan.state.end() && it->second.item) reply_bytes += text_value_bytes(k, it->second.item->data.size());
      });
      plan.reply_too_large = reply_bytes > info_.max_get_reply;
    }
    for_each_request_key(r, [&](std::string_view k) {
      auto it = plan.state.find(k);
      const bool read_failed = it != plan.state.end() && it->second.error;
      if (read_failed || (is_text_multi(r) && plan.reply_too_large)) {
        decisions.add(k, r.track_races, read_failed ? KeyOutcome::kReadFailed : KeyOutcome::kReplyTooLarge);
        return;
      }
      const Item* current = it != plan.state.end() && it->second.item ? &*it->second.item : nullptr;
      MetaReply meta_reply;
      Change c = is_meta(r.command) ? decide_meta(r, k, current, now, next_cas, meta_reply)
                                    : apply_change(r, current, now, info_.max_item_size, next_cas);
      const rocksdb::Slice key(k.data(), k.size());
      if (c.write == Change::Write::kPut) {
        // Items live in the default column family, which a batch's plain Put addresses.
        encoded.clear();
        encode_item(c.item.meta, c.item.data, encoded);
        batch.Put(key, encoded);
        // What the next request of the segment sees: an item written already expired (a touch
        // or gat with a negative or past TTL, a set with one) is gone for it, as in memcached.
        if (it != plan.state.end()) {
          if (is_expired(c.item.meta.expiry, now)) {
            it->second.item.reset();
          } else {
            it->second.item = c.item;
          }
        }
      } else if (c.write == Change::Write::kDelete) {
        batch.Delete(key);
        if (it != plan.state.end()) it->second.item.reset();
      }
      // Only a gat reply needs the value again; don't hold every set's copy until the write.
      if (r.command != Command::kGat && r.command != Command::kGats) std::string().swap(c.item.data);
      decisions.add(k, r.track_races, KeyOutcome::kDecided, std::move(c), current != nullptr, std::move(meta_reply));
    });
  }
}

rocksdb::Status Engine::commit(rocksdb::WriteBatch& batch, bool on_loop) {
  if (batch.Count() == 0) return rocksdb::Status::OK();
  if (!on_loop) return store_.write(batch);
  const auto start = std::chrono::steady_clock::now();
  rocksdb::Status written = store_.try_write_now(batch);
  const auto end = std::chrono::steady_clock::now();
  if (end - start > kSlowInlineWrite) {
    inline_writes_paused_until_.store((end + kInlineWritePause).time_since_epoch().count(), std::memory_order_relaxed);
    stats_.add(L2Counter::l2_inline_write_pauses);
  }
  return written;
}

void Engine::note_races(WriteDecisions& decisions, WriteHistory::Accessor who) {
  const int64_t now_ms = steady_ms();
  for (size_t i = 0; i < decisions.changes.size(); ++i) {
    if (decisions.tracked[i] == 0) continue;
    if (decisions.changes[i].write == Change::Write::kNone) {
      // A meta get that changed nothing is a read the worker may backfill.
      if (decisions.meta[i].code == MetaCode::kHit) history_.note_read(decisions.keys[i], who, now_ms);
      continue;
    }
    decisions.raced[i] = history_.note_write(decisions.keys[i], who, now_ms) ? 1 : 0;
  }
}

void Engine::reply_writes(std::span<const Request> segment, const WriteDecisions& decisions,
                          const rocksdb::Status& written, std::string& out) {
  size_t c = 0;
  for (const Request& r : segment) {
    if (kind_of(r) != Kind::kWrite) {
      run_local(r, out);
      continue;
    }
    const size_t first = c;
    bool read_failed = false;
    bool too_large = false;
    for_each_request_key(r, [&](std::string_view) {
      read_failed = read_failed || decisions.outcomes[c] == KeyOutcome::kReadFailed;
      too_large = too_large || decisions.outcomes[c] == KeyOutcome::kReplyTooLarge;
      ++c;
    });
    if (read_failed) {
      append_failure(out, r, "read error");
      continue;
    }
    if (too_large) {
      proto::append_line(out, kGetReplyTooLarge);
      continue;
    }
    // A failed WriteBatch fails every write request of the segment, also those that wrote
    // nothing: each was decided against the segment's view, which includes what was not written
    // ("set k; add k" must not answer NOT_STORED when k may not exist).
    if (!written.ok()) {
      append_failure(out, r, "write error");
      continue;
    }
    for (size_t i = first; i < c; ++i) count_change(stats_, r, decisions.changes[i], decisions.existed[i] != 0);
    if (is_text_multi(r)) {
      // Text gat/gats: the VALUE lines of the keys that were there, then END.
      size_t i = first;
      for_each_request_key(r, [&](std::string_view key) {
        const Change& ch = decisions.changes[i++];
        if (ch.status == bin::kSuccess) {
          proto::append_text_value(out, key, ch.item.meta.flags, ch.item.data, r.command == Command::kGats,
                                   ch.item.meta.cas);
        }
      });
      proto::append_line(out, "END");
      continue;
    }
    if (is_meta(r.command)) {
      append_meta_reply(out, r, decisions.changes[first], decisions.meta[first], decisions.raced[first] != 0);
      continue;
    }
    const size_t at = out.size();
    append_change_reply(out, r, decisions.changes[first]);
    if (decisions.raced[first] != 0 && decisions.changes[first].status == bin::kSuccess &&
        r.protocol == Protocol::kBinary && out.size() >= at + bin::kHeaderSize) {
      out[at + 5] = static_cast<char>(static_cast<uint8_t>(out[at + 5]) | bin::kDataTypeRacedWrite);
      stats_.add(L2Counter::l2_raced_writes);
    }
  }
}

}  // namespace rend::l2

namespace rend::l2 {

bool Engine::is_meta(Command c) {
  return c == Command::kMetaGet || c == Command::kMetaSet || c == Command::kMetaDelete ||
         c == Command::kMetaArithmetic || c == Command::kMetaDebug;
}

Change Engine::decide_meta(const Request& r, std::string_view key, const Item* current, uint32_t now,
                           const CasFn& next_cas, MetaReply& reply) {
  Change c;
  c.status = bin::kSuccess;
  if (r.command == Command::kMetaDebug) {
    const size_t size = current != nullptr ? kItemHeaderSize + key.size() + current->data.size() : 0;
    reply.code = current != nullptr ? MetaCode::kDebug : MetaCode::kMiss;
    reply.bytes = meta_debug_reply(key, current, now, size);
    return c;
  }
  proto::MetaOptions options;
  std::string_view error;
  const std::string_view token = r.protocol == Protocol::kText ? key : std::string_view();
  if (!proto::parse_meta_options(r.command, token, r.meta_flags, options, error) ||
      (options.base64 && r.protocol == Protocol::kText)) {
    // A worker sends only what its parser accepted; rend-l2's own text port keeps keys as sent.
    reply.code = MetaCode::kError;
    reply.bytes =
        std::string(options.base64 && error.empty() ? "CLIENT_ERROR bad command line format" : error) + "\r\n";
    return c;
  }
  MetaRequest q{r.command, &options, r.meta_flags, key, r.value};
  MetaChange m = apply_meta(q, current, now, info_.max_item_size, next_cas);
  // The counters (count_change) read a meta command's outcome as a classic one's.
  if (m.reply.code == MetaCode::kNotStored || m.reply.code == MetaCode::kExists) c.status = bin::kNotStored;
  if (m.reply.code == MetaCode::kNotFound || m.reply.code == MetaCode::kMiss) c.status = bin::kKeyNotFound;
  if (m.reply.code == MetaCode::kError) c.status = bin::kInvalidArguments;
  c.write = m.write;
  c.item = std::move(m.item);
  reply = std::move(m.reply);
  return c;
}

void Engine::append_meta_reply(std::string& out, const Request& r, const Change& c, const MetaReply& reply,
                               bool raced) {
  stats_.add(L2Counter::cmd_meta);
  if (r.protocol == Protocol::kText) {
    if (!(r.quiet && reply.suppressible)) out += reply.bytes;
    return;
  }
  proto::MetaSummary s;
  s.code = static_cast<uint8_t>(reply.code);
  s.has_item = reply.has_item;
  s.clean = reply.clean;
  s.changed = c.write != Change::Write::kNone;
  s.suppressible = reply.suppressible;
  s.flags = reply.meta.flags;
  s.expiry = reply.meta.expiry;
  s.cas = reply.meta.cas;
  const bool flag_race = raced && c.write != Change::Write::kNone;
  if (flag_race) stats_.add(L2Counter::l2_raced_writes);
  bin::append_packet(out, bin::kResponseMagic, bin::kMeta, bin::kSuccess, r.opaque, 0, proto::encode_meta_summary(s),
                     {}, reply.bytes, flag_race ? bin::kDataTypeRacedWrite : 0);
}

}  // namespace rend::l2
