#include "l2/engine.h"

#include <chrono>
#include <ctime>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/protocol/binary_format.h"
#include "common/protocol/reply_compose.h"
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

bool is_text_multi(const Request& r) {
  return r.protocol == Protocol::kText && (r.command == Command::kGet || r.command == Command::kGets ||
                                           r.command == Command::kGat || r.command == Command::kGats);
}

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

}  // namespace

Engine::Kind Engine::kind_of(const Request& r) {
  switch (r.command) {
    case Command::kGet:
    case Command::kGets:
    case Command::kGetE:
      return Kind::kRead;
    case Command::kGat:
    case Command::kGats:
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
    case Command::kDelete:
    case Command::kIncr:
    case Command::kDecr:
    case Command::kTouch:
      return Kind::kWrite;
    case Command::kTooLarge:
      return r.original == Command::kSet ? Kind::kWrite : Kind::kLocal;
    case Command::kFlushAll:
    case Command::kStats:
      return Kind::kBarrier;
    default:
      return Kind::kLocal;
  }
}

size_t Engine::segment_end(std::span<const Request> requests, size_t i, Kind& segment, size_t& keys) {
  segment = Kind::kLocal;
  keys = 0;
  size_t j = i;
  while (j < requests.size()) {
    const Kind k = kind_of(requests[j]);
    if (k == Kind::kBarrier) break;
    if (k != Kind::kLocal) {
      if (segment == Kind::kLocal) {
        segment = k;
      } else if (k != segment) {
        break;
      }
    }
    keys += k == Kind::kLocal ? 1 : key_count(requests[j]);
    ++j;
    if (keys >= kSegmentKeys) break;
  }
  return j;
}

size_t Engine::execute(std::span<const Request> requests, size_t next, std::string& out, size_t reply_limit) {
  size_t i = next;
  while (i < requests.size() && out.size() < reply_limit) {
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
      i += *run_reads(s, out, reply_limit, Where::kWorker);
      continue;
    }
    if (segment == Kind::kWrite) {
      run_writes(s, out, Where::kWorker);
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
                              InlineBudget& budget) {
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
      const std::optional<size_t> answered = run_reads(s, out, reply_limit, Where::kLoop);
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
      if (!run_writes(s, out, Where::kLoop)) {
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
                                        Where where) {
  const uint32_t now = unix_now();
  const FlushState flush = store_.flush_state();
  std::vector<rocksdb::Slice> keys;
  for (const Request& r : segment) {
    if (kind_of(r) != Kind::kRead) continue;
    for_each_request_key(r, [&](std::string_view k) { keys.emplace_back(k.data(), k.size()); });
  }
  std::vector<rocksdb::PinnableSlice> values;
  std::vector<rocksdb::Status> statuses;
  if (!store_.multi_get(keys, values, statuses, where == Where::kLoop)) return std::nullopt;

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
      for_each_request_key(r, [&](std::string_view key) {
        const size_t at = k++;
        const Found f = classify(statuses[at], values[at], flush, now, meta, data);
        failed = failed || f == Found::kError;
        count_get(stats_, f, false);
        if (f == Found::kLive) proto::append_text_value(out, key, meta.flags, data, r.command == Command::kGets, meta.cas);
      });
      if (failed) {
        out.resize(start);  // never half a reply: the whole get fails
        stats_.add(L2Counter::l2_read_errors);
        append_failure(out, r, "read error");
      } else {
        proto::append_line(out, "END");
      }
      continue;
    }
    const size_t at = k++;
    const Found f = classify(statuses[at], values[at], flush, now, meta, data);
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

bool Engine::run_writes(std::span<const Request> segment, std::string& out, Where where) {
  const bool on_loop = where == Where::kLoop;
  const uint32_t now = unix_now();
  const FlushState flush = store_.flush_state();

  // Which keys this segment writes, and which of them it must read first.
  std::vector<size_t> stripes;
  std::unordered_map<std::string_view, KeyState> state;
  std::vector<rocksdb::Slice> reads;
  size_t writes = 0;
  size_t value_bytes = 0;
  for (const Request& r : segment) {
    if (kind_of(r) != Kind::kWrite) continue;
    ++writes;
    value_bytes += r.value.size();
    for_each_request_key(r, [&](std::string_view k) {
      stripes.push_back(locks_.stripe(k));
      if (needs_current(r) && state.try_emplace(k).second) reads.emplace_back(k.data(), k.size());
    });
  }

  if (on_loop && value_bytes > kInlineWriteBytes) return false;  // the WriteBatch would be too

  std::vector<Change> changes;
  std::vector<uint8_t> existed;  // per change: the key had a live item (for the counters)
  std::vector<uint8_t> key_failed;
  rocksdb::Status written;
  {
    using Wait = KeyLocks::Guard::Wait;
    KeyLocks::Guard guard(locks_, std::move(stripes), on_loop ? Wait::kTry : Wait::kBlock);
    if (!guard.locked()) return false;
    std::vector<rocksdb::PinnableSlice> values;
    std::vector<rocksdb::Status> statuses;
    if (!store_.multi_get(reads, values, statuses, on_loop)) return false;
    for (size_t i = 0; i < reads.size(); ++i) {
      KeyState& ks = state[std::string_view(reads[i].data(), reads[i].size())];
      ItemMeta meta;
      std::string_view data;
      const Found f = classify(statuses[i], values[i], flush, now, meta, data);
      if (f == Found::kError) ks.error = true;
      if (f == Found::kLive) ks.item = Item{meta, std::string(data)};
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
      for_each_request_key(r, [&](std::string_view k) {
        auto it = state.find(k);
        if (it != state.end() && it->second.error) {
          changes.emplace_back();
          existed.push_back(0);
          key_failed.push_back(1);
          return;
        }
        const Item* current = it != state.end() && it->second.item ? &*it->second.item : nullptr;
        Change c = apply_change(r, current, now, next_cas);
        const rocksdb::Slice key(k.data(), k.size());
        if (c.write == Change::Write::kPut) {
          // Items live in the default column family, which a batch's plain Put addresses.
          encoded.clear();
          encode_item(c.item.meta, c.item.data, encoded);
          batch.Put(key, encoded);
          if (it != state.end()) it->second.item = c.item;
        } else if (c.write == Change::Write::kDelete) {
          batch.Delete(key);
          if (it != state.end()) it->second.item.reset();
        }
        // Only a gat reply needs the value again; don't hold every set's copy until the write.
        if (r.command != Command::kGat && r.command != Command::kGats) std::string().swap(c.item.data);
        existed.push_back(current != nullptr);
        key_failed.push_back(0);
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
  }  // locks released: replies need no store access
  if (!written.ok()) stats_.add(L2Counter::l2_write_errors);
  stats_.add(on_loop ? L2Counter::l2_inline_writes : L2Counter::l2_offloaded_writes, writes);

  size_t c = 0;
  for (const Request& r : segment) {
    if (kind_of(r) != Kind::kWrite) {
      run_local(r, out);
      continue;
    }
    // A failed WriteBatch fails every request that wanted to write; the others stand.
    const size_t first = c;
    bool failed = false;
    for_each_request_key(r, [&](std::string_view) {
      failed = failed || key_failed[c] || (!written.ok() && changes[c].write != Change::Write::kNone);
      ++c;
    });
    if (failed) {
      append_failure(out, r, written.ok() ? "read error" : "write error");
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
      append_change_reply(out, r, changes[first]);
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
