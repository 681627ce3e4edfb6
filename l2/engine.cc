#include "l2/engine.h"

#include <chrono>
#include <ctime>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/protocol/binary_format.h"
#include "common/protocol/command_traits.h"
#include "common/protocol/reply_compose.h"
#include "common/get_reply_limit.h"
#include "common/item_rules.h"
#include "l2/value_format.h"
#include "l2/reply.h"
#include "l2/stats_report.h"

namespace rend::l2 {

using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

namespace {

uint32_t unix_now() { return static_cast<uint32_t>(time(nullptr)); }

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool is_text_multi(const Request& r) { return proto::is_text_multi_key(r); }

template <typename Fn>
void for_each_request_key(const Request& r, Fn&& fn) {
  if (is_text_multi(r)) {
    proto::for_each_key(r.keys, fn);
  } else {
    fn(r.key);
  }
}

size_t key_count(const Request& r) {
  size_t n = 0;
  for_each_request_key(r, [&](std::string_view) { ++n; });
  return n;
}

// Whether a write needs the key's current item (a plain set does not: it overwrites blindly).
bool needs_current(const Request& r) {
  if (r.command == Command::kTooLarge) return false;
  if (r.command == Command::kSet) return r.cas != 0;
  return true;
}

std::string_view view(const rocksdb::PinnableSlice& s) { return std::string_view(s.data(), s.size()); }

enum class Found : uint8_t { kLive, kAbsent, kExpired, kFlushed, kError };

// What a stored value means at `now`; meta/data are set when live.
Found classify(const rocksdb::Status& st, const rocksdb::PinnableSlice& value, const FlushState& flush, uint32_t now,
               ItemMeta& meta, std::string_view& data) {
  if (st.IsNotFound()) return Found::kAbsent;
  if (!st.ok()) return Found::kError;
  // A record we cannot read is treated as absent: the next write of the key replaces it.
  if (!decode_item(view(value), meta, data)) return Found::kAbsent;
  if (is_expired(meta.expiry, now)) return Found::kExpired;
  if (flush.is_flushed(meta.cas, meta.stored_at, now)) return Found::kFlushed;
  return Found::kLive;
}

void count_get(L2Stats& s, Found f, bool touching) {
  s.add(L2Counter::cmd_get);
  if (touching) s.add(L2Counter::cmd_touch);
  if (f == Found::kLive) {
    s.add(L2Counter::get_hits);
    if (touching) s.add(L2Counter::touch_hits);
    return;
  }
  s.add(L2Counter::get_misses);
  if (touching) s.add(L2Counter::touch_misses);
  if (f == Found::kExpired) s.add(L2Counter::get_expired);
  if (f == Found::kFlushed) s.add(L2Counter::get_flushed);
}

void count_change(L2Stats& s, const Request& r, const Change& c, bool existed) {
  const bool ok = c.status == bin::kSuccess;
  switch (r.command) {
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
      s.add(L2Counter::cmd_set);
      if (ok) s.add(L2Counter::total_items);
      if (r.command == Command::kCas || (r.cas != 0 && r.command != Command::kAppend && r.command != Command::kPrepend)) {
        s.add(ok ? L2Counter::cas_hits : c.status == bin::kKeyExists ? L2Counter::cas_badval : L2Counter::cas_misses);
      }
      break;
    case Command::kTooLarge:
      s.add(L2Counter::cmd_set);
      s.add(L2Counter::store_too_large);
      break;
    case Command::kDelete:
      if (ok || c.status == bin::kKeyNotFound) s.add(ok ? L2Counter::delete_hits : L2Counter::delete_misses);
      break;
    case Command::kIncr:
    case Command::kDecr: {
      const bool incr = r.command == Command::kIncr;
      if (ok && !existed) {
        s.add(L2Counter::total_items);  // created by a binary incr/decr with an initial value
      } else if (ok) {
        s.add(incr ? L2Counter::incr_hits : L2Counter::decr_hits);
      } else if (c.status == bin::kKeyNotFound) {
        s.add(incr ? L2Counter::incr_misses : L2Counter::decr_misses);
      }
      break;
    }
    case Command::kTouch:
      s.add(L2Counter::cmd_touch);
      s.add(ok ? L2Counter::touch_hits : L2Counter::touch_misses);
      break;
    case Command::kGat:
    case Command::kGats:
      count_get(s, ok ? Found::kLive : Found::kAbsent, true);
      break;
    default:
      break;
  }
}

// The current state of one key inside a write segment.
struct KeyState {
  std::optional<Item> item;
  bool error = false;  // its read failed: requests on it are answered with an error
};

// What became of one key of a write request.
enum class KeyOutcome : uint8_t {
  kDecided,        // apply_change() decided; its Change says what (and what to write)
  kReadFailed,     // the key's current item could not be read: the request fails
  kReplyTooLarge,  // a text gat/gats whose reply would pass the cap: nothing applied
};

// Bytes one hit adds to a text get/gat reply: "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n".
size_t text_value_bytes(std::string_view key, size_t data_size) { return data_size + text_hit_overhead(key.size()); }

// Reads a segment's keys for the requests that need them. On a worker, at most kSegmentKeys at a
// time, as the requests come to them: a text multi-get may name hundreds of thousands of keys, and
// holding all their values at once is the memory its reply cap is there to save (a get that
// fails never reads the rest). On the loop, all at once and only from memory, since nothing may
// happen unless every key is there (the loop's budget keeps such segments small).
class SegmentReads {
 public:
  SegmentReads(Store& store, std::vector<rocksdb::Slice> keys) : store_(store), keys_(std::move(keys)) {}

  // The loop: false, with nothing to use, when some key is not in memory.
  bool read_all_from_memory() {
    first_ = 0;
    return store_.multi_get(keys_, values_, statuses_, /*no_wait=*/true);
  }
  // Makes key `i` readable: reads the chunk that starts at it unless it is already there.
  void fetch(size_t i) {
    if (i >= first_ && i - first_ < values_.size()) return;
    first_ = i;
    chunk_.assign(keys_.begin() + static_cast<ptrdiff_t>(i),
                  keys_.begin() + static_cast<ptrdiff_t>(std::min(keys_.size(), i + Engine::kSegmentKeys)));
    store_.multi_get(chunk_, values_, statuses_);
  }
  std::string_view key(size_t i) const { return std::string_view(keys_[i].data(), keys_[i].size()); }
  const rocksdb::Status& status(size_t i) const { return statuses_[i - first_]; }
  const rocksdb::PinnableSlice& value(size_t i) const { return values_[i - first_]; }
  size_t size() const { return keys_.size(); }

 private:
  Store& store_;
  std::vector<rocksdb::Slice> keys_;
  std::vector<rocksdb::Slice> chunk_;
  size_t first_ = 0;  // the index of values_[0]
  std::vector<rocksdb::PinnableSlice> values_;
  std::vector<rocksdb::Status> statuses_;
};

}  // namespace

Engine::Kind Engine::kind_of(const Request& r) {
  // Only a too-large set writes (it drops the old value); a too-large add/replace/... is refused.
  if (r.command == Command::kTooLarge) return r.original == Command::kSet ? Kind::kWrite : Kind::kLocal;
  if (r.command == Command::kFlushAll || r.command == Command::kStats) return Kind::kBarrier;
  const proto::CommandTraits& t = proto::traits(r.command);
  if (t.writes_key) return Kind::kWrite;  // gat/gats too: they change the TTL
  if (t.reads_key) return Kind::kRead;
  return Kind::kLocal;
}

size_t Engine::segment_end(std::span<const Request> requests, size_t i, Kind& segment, size_t& keys) {
  segment = Kind::kLocal;
  keys = 0;
  size_t j = i;
  while (j < requests.size()) {
    const Kind k = kind_of(requests[j]);
    if (k == Kind::kBarrier) break;
    // A text gat/gats is the only write of its segment: its keys (any number) are then all the
    // segment holds in memory, so run_writes can refuse a too-large reply before reading them all.
    const bool lone_write = k == Kind::kWrite && is_text_multi(requests[j]);
    if (k != Kind::kLocal) {
      if (segment == Kind::kLocal) {
        segment = k;
      } else if (k != segment || lone_write) {
        break;
      }
    }
    keys += k == Kind::kLocal ? 1 : key_count(requests[j]);
    ++j;
    if (keys >= kSegmentKeys || lone_write) break;
  }
  return j;
}

size_t Engine::execute(std::span<const Request> requests, size_t next, std::string& out, size_t reply_limit,
                       const std::atomic<bool>& cancelled, WriteHistory::Accessor who) {
  size_t i = next;
  while (i < requests.size() && out.size() < reply_limit && !cancelled.load(std::memory_order_relaxed)) {
    if (kind_of(requests[i]) == Kind::kBarrier) {
      run_barrier(requests[i], out);
      ++i;
      continue;
    }
    Kind segment;
    size_t keys;
    const size_t j = segment_end(requests, i, segment, keys);
    const std::span<const Request> s = requests.subspan(i, j - i);
    if (segment == Kind::kRead) {
      i += *run_reads(s, out, reply_limit, Where::kWorker, who);
      continue;
    }
    if (segment == Kind::kWrite) {
      run_writes(s, out, Where::kWorker, who);
    } else {
      for (const Request& r : s) run_local(r, out);
    }
    i = j;
  }
  stats_.add(L2Counter::l2_batches);
  stats_.add(L2Counter::l2_batch_requests, i - next);
  return i;
}

size_t Engine::execute_inline(std::span<const Request> requests, size_t next, std::string& out, size_t reply_limit,
                              InlineBudget& budget, WriteHistory::Accessor who) {
  size_t i = next;
  while (i < requests.size() && out.size() < reply_limit) {
    if (kind_of(requests[i]) == Kind::kBarrier) break;  // stats walks the data dir; flush_all syncs
    Kind segment;
    size_t keys;
    const size_t j = segment_end(requests, i, segment, keys);
    const std::span<const Request> s = requests.subspan(i, j - i);
    if (segment == Kind::kRead) {
      // Whole segments within the budget: a big one goes to a worker, where its MultiGet costs
      // the loop nothing (and the hand-off is shared by many requests).
      if (keys > budget.read_keys) break;
      const std::optional<size_t> answered = run_reads(s, out, reply_limit, Where::kLoop, who);
      if (!answered) {
        stats_.add(L2Counter::l2_inline_fallbacks);
        break;
      }
      budget.read_keys -= keys;
      i += *answered;
    } else if (segment == Kind::kWrite) {
      if (keys > budget.write_keys) break;
      if (std::chrono::steady_clock::now().time_since_epoch().count() <
          inline_writes_paused_until_.load(std::memory_order_relaxed)) {
        break;
      }
      if (!run_writes(s, out, Where::kLoop, who)) {
        stats_.add(L2Counter::l2_inline_fallbacks);
        break;
      }
      budget.write_keys -= keys;
      i = j;
    } else {
      if (keys > budget.read_keys) break;  // cheap, but a batch may hold thousands
      for (const Request& r : s) run_local(r, out);
      budget.read_keys -= keys;
      i = j;
    }
  }
  if (i > next) {
    stats_.add(L2Counter::l2_batches);
    stats_.add(L2Counter::l2_batch_requests, i - next);
  }
  return i;
}

std::optional<size_t> Engine::run_reads(std::span<const Request> segment, std::string& out, size_t reply_limit,
                                        Where where, WriteHistory::Accessor who) {
  const uint32_t now = unix_now();
  const FlushState flush = store_.flush_state();
  std::vector<rocksdb::Slice> keys;
  int64_t now_ms = 0;
  for (const Request& r : segment) {
    if (kind_of(r) != Kind::kRead) continue;
    if (r.track_races && now_ms == 0) now_ms = steady_ms();
    for_each_request_key(r, [&](std::string_view k) {
      keys.emplace_back(k.data(), k.size());
      // Noted before the read: a write applied after it then finds the note (WriteHistory).
      if (r.track_races) history_.note_read(k, who, now_ms);
    });
  }
  SegmentReads stored(store_, std::move(keys));
  if (where == Where::kLoop && !stored.read_all_from_memory()) return std::nullopt;

  size_t k = 0;
  size_t answered = 0;
  size_t reads = 0;
  for (const Request& r : segment) {
    if (out.size() >= reply_limit) break;
    ++answered;
    if (kind_of(r) != Kind::kRead) {
      run_local(r, out);
      continue;
    }
    ++reads;
    ItemMeta meta;
    std::string_view data;
    if (is_text_multi(r)) {
      const size_t start = out.size();
      bool failed = false;
      bool too_large = false;
      for_each_request_key(r, [&](std::string_view key) {
        const size_t at = k++;
        if (failed || too_large) return;  // the reply is lost anyway: the rest is neither read nor counted
        stored.fetch(at);
        const Found f = classify(stored.status(at), stored.value(at), flush, now, meta, data);
        failed = f == Found::kError;
        count_get(stats_, f, false);
        if (f != Found::kLive) return;
        proto::append_text_value(out, key, meta.flags, data, r.command == Command::kGets, meta.cas);
        too_large = out.size() - start > info_.max_get_reply;
      });
      if (failed || too_large) {
        out.resize(start);  // never half a reply: the whole get fails
        if (too_large) out.shrink_to_fit();  // and gives back what the cap was there to bound
      }
      if (failed) {
        stats_.add(L2Counter::l2_read_errors);
        append_failure(out, r, "read error");
      } else if (too_large) {
        proto::append_line(out, kGetReplyTooLarge);
      } else {
        proto::append_line(out, "END");
      }
      continue;
    }
    const size_t at = k++;
    stored.fetch(at);
    const Found f = classify(stored.status(at), stored.value(at), flush, now, meta, data);
    count_get(stats_, f, false);
    if (f == Found::kError) {
      stats_.add(L2Counter::l2_read_errors);
      append_failure(out, r, "read error");
    } else {
      append_binary_read(out, r, f == Found::kLive ? &meta : nullptr, data);
    }
  }
  stats_.add(where == Where::kLoop ? L2Counter::l2_inline_reads : L2Counter::l2_offloaded_reads, reads);
  return answered;
}

bool Engine::run_writes(std::span<const Request> segment, std::string& out, Where where,
                        WriteHistory::Accessor who) {
  const bool on_loop = where == Where::kLoop;

  // Which keys this segment writes, and which of them it must read first.
  std::vector<size_t> stripes;
  std::unordered_map<std::string_view, KeyState> state;
  std::vector<rocksdb::Slice> reads;
  size_t writes = 0;
  size_t value_bytes = 0;
  bool text_gat = false;  // the segment's only write is a text gat/gats (see segment_end)
  for (const Request& r : segment) {
    if (kind_of(r) != Kind::kWrite) continue;
    ++writes;
    value_bytes += r.value.size();
    text_gat = text_gat || is_text_multi(r);
    for_each_request_key(r, [&](std::string_view k) {
      stripes.push_back(locks_.stripe(k));
      if (needs_current(r) && state.try_emplace(k).second) reads.emplace_back(k.data(), k.size());
    });
  }

  if (on_loop && value_bytes > kInlineWriteBytes) return false;  // the WriteBatch would be too

  std::vector<Change> changes;
  std::vector<uint8_t> existed;  // per change: the key had a live item (for the counters)
  std::vector<KeyOutcome> outcomes;  // per change
  std::vector<std::string_view> change_keys;  // per change
  std::vector<uint8_t> tracked;  // per change: its request asked to track races
  std::vector<uint8_t> raced;  // per change: another process accessed the key within the race window
  rocksdb::Status written;
  {
    using Wait = KeyLocks::Guard::Wait;
    KeyLocks::Guard guard(locks_, std::move(stripes), on_loop ? Wait::kTry : Wait::kBlock);
    if (!guard.locked()) return false;
    // The clock and the flush cutoffs are read only now that the stripes are ours: a segment that
    // waited for a stripe judges its items as they are when it acts (an expiry second may have
    // passed meanwhile, a flush_all may have run: it takes every stripe, see run_barrier).
    const uint32_t now = unix_now();
    const FlushState flush = store_.flush_state();
    SegmentReads stored(store_, std::move(reads));
    if (on_loop && !stored.read_all_from_memory()) return false;
    // A text gat's reply holds each of its live items at least once: once the distinct ones pass
    // the cap, the reply would too, and the rest need not be read into memory at all.
    size_t live_bytes = 0;
    bool reply_too_large = false;
    for (size_t i = 0; i < stored.size() && !reply_too_large; ++i) {
      stored.fetch(i);
      const std::string_view key = stored.key(i);
      KeyState& ks = state[key];
      ItemMeta meta;
      std::string_view data;
      const Found f = classify(stored.status(i), stored.value(i), flush, now, meta, data);
      if (f == Found::kError) ks.error = true;
      if (f != Found::kLive) continue;
      ks.item = Item{meta, std::string(data)};
      live_bytes += text_value_bytes(key, data.size());
      reply_too_large = text_gat && live_bytes > info_.max_get_reply;
    }

    rocksdb::WriteBatch batch;
    std::string encoded;
    bool cas_exhausted = false;  // on the loop: the CAS lease needs renewing, a synced write
    const CasFn next_cas = [this, on_loop, &cas_exhausted]() -> uint64_t {
      if (!on_loop) return store_.next_cas();
      const std::optional<uint64_t> cas = store_.try_next_cas();
      cas_exhausted = cas_exhausted || !cas;
      return cas.value_or(0);
    };
    for (const Request& r : segment) {
      if (kind_of(r) != Kind::kWrite) continue;
      if (is_text_multi(r) && !reply_too_large) {
        // The items a gat returns are the ones there now (it changes only their expiry).
        size_t reply_bytes = 0;
        for_each_request_key(r, [&](std::string_view k) {
          const auto it = state.find(k);
          if (it != state.end() && it->second.item) reply_bytes += text_value_bytes(k, it->second.item->data.size());
        });
        reply_too_large = reply_bytes > info_.max_get_reply;
      }
      for_each_request_key(r, [&](std::string_view k) {
        auto it = state.find(k);
        const bool read_failed = it != state.end() && it->second.error;
        change_keys.push_back(k);
        tracked.push_back(r.track_races ? 1 : 0);
        if (read_failed || (is_text_multi(r) && reply_too_large)) {
          changes.emplace_back();
          existed.push_back(0);
          outcomes.push_back(read_failed ? KeyOutcome::kReadFailed : KeyOutcome::kReplyTooLarge);
          return;
        }
        const Item* current = it != state.end() && it->second.item ? &*it->second.item : nullptr;
        Change c = apply_change(r, current, now, info_.max_item_size, next_cas);
        const rocksdb::Slice key(k.data(), k.size());
        if (c.write == Change::Write::kPut) {
          // Items live in the default column family, which a batch's plain Put addresses.
          encoded.clear();
          encode_item(c.item.meta, c.item.data, encoded);
          batch.Put(key, encoded);
          // What the next request of the segment sees: an item written already expired (a touch
          // or gat with a negative or past TTL, a set with one) is gone for it, as in memcached.
          if (it != state.end()) {
            if (is_expired(c.item.meta.expiry, now)) {
              it->second.item.reset();
            } else {
              it->second.item = c.item;
            }
          }
        } else if (c.write == Change::Write::kDelete) {
          batch.Delete(key);
          if (it != state.end()) it->second.item.reset();
        }
        // Only a gat reply needs the value again; don't hold every set's copy until the write.
        if (r.command != Command::kGat && r.command != Command::kGats) std::string().swap(c.item.data);
        existed.push_back(current != nullptr);
        outcomes.push_back(KeyOutcome::kDecided);
        changes.push_back(std::move(c));
      });
    }
    if (on_loop && (cas_exhausted || batch.GetDataSize() > kInlineWriteBytes)) return false;
    if (batch.Count() > 0 && on_loop) {
      const auto start = std::chrono::steady_clock::now();
      written = store_.try_write_now(batch);
      const auto end = std::chrono::steady_clock::now();
      if (end - start > kSlowInlineWrite) {
        inline_writes_paused_until_.store((end + kInlineWritePause).time_since_epoch().count(),
                                          std::memory_order_relaxed);
        stats_.add(L2Counter::l2_inline_write_pauses);
      }
    } else if (batch.Count() > 0) {
      written = store_.write(batch);
    }
    // Nothing was written (a stall, another writer): a worker does it all again, CAS uniques
    // included (the ones handed out here are simply never used).
    if (on_loop && written.IsIncomplete()) return false;
    // Still under the stripe locks, so two writes of a key are noted in the order RocksDB
    // applied them (a segment that wrote nothing changed nothing another worker could race).
    raced.assign(changes.size(), 0);
    if (written.ok() && batch.Count() > 0) {
      const int64_t now_ms = steady_ms();
      for (size_t i = 0; i < changes.size(); ++i) {
        if (changes[i].write == Change::Write::kNone || tracked[i] == 0) continue;
        raced[i] = history_.note_write(change_keys[i], who, now_ms) ? 1 : 0;
      }
    }
  }  // locks released: replies need no store access
  if (!written.ok()) stats_.add(L2Counter::l2_write_errors);
  stats_.add(on_loop ? L2Counter::l2_inline_writes : L2Counter::l2_offloaded_writes, writes);

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
      read_failed = read_failed || outcomes[c] == KeyOutcome::kReadFailed;
      too_large = too_large || outcomes[c] == KeyOutcome::kReplyTooLarge;
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
    for (size_t i = first; i < c; ++i) count_change(stats_, r, changes[i], existed[i] != 0);
    if (is_text_multi(r)) {
      // Text gat/gats: the VALUE lines of the keys that were there, then END.
      size_t i = first;
      for_each_request_key(r, [&](std::string_view key) {
        const Change& ch = changes[i++];
        if (ch.status == bin::kSuccess) {
          proto::append_text_value(out, key, ch.item.meta.flags, ch.item.data, r.command == Command::kGats,
                                   ch.item.meta.cas);
        }
      });
      proto::append_line(out, "END");
    } else {
      const size_t at = out.size();
      append_change_reply(out, r, changes[first]);
      if (raced[first] != 0 && changes[first].status == bin::kSuccess && r.protocol == Protocol::kBinary &&
          out.size() >= at + bin::kHeaderSize) {
        out[at + 5] = static_cast<char>(static_cast<uint8_t>(out[at + 5]) | bin::kDataTypeRacedWrite);
        stats_.add(L2Counter::l2_raced_writes);
      }
    }
  }
  return true;
}

void Engine::run_barrier(const Request& r, std::string& out) {
  if (r.command == Command::kStats) {
    run_stats(r, out);
    return;
  }
  stats_.add(L2Counter::cmd_flush);
  // Every stripe, in the writers' ascending order (so no deadlock), held across the cutoff's
  // allocation and publication: a write segment reads an item and the cutoffs, decides, and
  // writes with a CAS it allocates, all under its stripes. Were flush_all to allocate its cutoff
  // in between, that write would get a CAS above the cutoff and survive the flush, carrying a
  // value derived from a flushed item (an incr brings the flushed counter back, plus one). With
  // every stripe held, each write segment runs wholly before the flush or wholly after it, and
  // the loop's try-lock writers simply leave their segments to a worker meanwhile. A flush_all is
  // rare; its 4096 lock operations cost well under a millisecond, and writers wait for its
  // synced write, which is the price of that order.
  KeyLocks::Guard every_stripe(locks_, locks_.every_stripe());
  const Status st = store_.flush_all(unix_now(), r.has_exptime ? r.exptime : 0);
  if (!st) {
    append_failure(out, r, "flush failed");
  } else if (r.protocol == Protocol::kBinary) {
    if (!r.quiet) proto::append_binary_status(out, r.opcode, r.opaque, bin::kSuccess);
  } else if (!r.quiet) {
    proto::append_line(out, "OK");
  }
}

void Engine::run_stats(const Request& r, std::string& out) {
  const std::string_view group = r.stats_group;
  const bool binary = r.protocol == Protocol::kBinary;
  Report report;
  if (group.empty()) {
    general_report(stats_, store_, info_, report);
    report.emplace_back("l2_race_history_overflows", std::to_string(history_.overflows()));
  } else if (group == "reset") {
    stats_.reset();
    if (binary) {
      append_report(out, r, report);  // just the terminator, as memcached
    } else {
      proto::append_line(out, "RESET");
    }
    return;
  } else if (group == "settings") {
    settings_report(store_, info_, report);
  } else {
    // memcached: a group it does not know is "ERROR" (text) / "Not found" (binary).
    if (binary) {
      proto::append_binary_status(out, r.opcode, r.opaque, bin::kKeyNotFound);
    } else {
      proto::append_line(out, "ERROR");
    }
    return;
  }
  append_report(out, r, report);
}

void Engine::run_local(const Request& r, std::string& out) {
  if (r.command == Command::kError || r.command == Command::kUnknown) stats_.add(L2Counter::protocol_errors);
  if (r.command == Command::kTooLarge) {
    stats_.add(L2Counter::cmd_set);
    stats_.add(L2Counter::store_too_large);
  }
  append_local_reply(out, r);
}

}  // namespace rend::l2
