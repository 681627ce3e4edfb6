#include "l2/engine.h"

#include <chrono>
#include <ctime>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/get_reply_limit.h"
#include "common/item_rules.h"
#include "common/local_reply.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/command_traits.h"
#include "common/protocol/reply_compose.h"
#include "l2/reply.h"
#include "l2/segment_support.h"
#include "l2/stats_report.h"
#include "l2/value_format.h"

namespace rend::l2 {

using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

static_assert(SegmentReads::kSegmentKeys == Engine::kSegmentKeys, "one MultiGet size for reads and writes");

Engine::Kind Engine::kind_of(const Request& r) {
  // Only a too-large set writes (it drops the old value); a too-large add/replace/... is refused.
  if (r.command == Command::kTooLarge) {
    return r.original == Command::kSet || r.original == Command::kMetaSet ? Kind::kWrite : Kind::kLocal;
  }
  // me reads the marks the meta writes keep: under the key's stripe, like them.
  if (r.command == Command::kMetaDebug) return Kind::kWrite;
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
      size_t bytes = 0;
      for (const Request& r : s) bytes += r.value.size();
      if (keys > budget.write_keys || bytes > budget.write_bytes) break;
      if (std::chrono::steady_clock::now().time_since_epoch().count() <
          inline_writes_paused_until_.load(std::memory_order_relaxed)) {
        break;
      }
      if (!run_writes(s, out, Where::kLoop, who)) {
        stats_.add(L2Counter::l2_inline_fallbacks);
        break;
      }
      budget.write_keys -= keys;
      budget.write_bytes -= bytes;
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
        out.resize(start);                   // never half a reply: the whole get fails
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
  append_local_reply(out, r);  // version, verbosity, noop, quit, errors, a too-large add/replace/...
}

}  // namespace rend::l2
