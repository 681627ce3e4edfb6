// Executes a connection's pipelined requests against the Store, in order, and composes the
// replies. execute() runs on a worker thread; execute_inline() on the event loop, for what needs
// neither I/O nor waiting.
//
// Batching: the requests of one batch are cut into segments that keep request order:
//   - consecutive reads (get/gets/GetE, text multi-get) -> RocksDB MultiGets, no locks;
//   - consecutive writes (set, add, replace, append, prepend, cas, delete, incr, decr, touch,
//     gat) -> the stripe locks of all their keys, MultiGets of the keys whose current item
//     matters, memcached's rules applied in request order against an in-segment view (so
//     "set k; append k" in one segment sees the set), one WriteBatch, then the locks go. A text
//     gat/gats (any number of keys) is a write segment of its own;
//   - flush_all and stats stand alone (they observe or change everything); flush_all also takes
//     every stripe, so it never falls between a write segment's read and its write;
//   - requests that need no store (version, noop, parse errors...) join whatever segment they
//     are in and are answered in their place.
// A segment's MultiGets take at most kSegmentKeys keys each on a worker (a text multi-get may
// name hundreds of thousands), and a text get's reply is capped (common/get_reply_limit.h). A write
// segment is acknowledged only after its WriteBatch is in RocksDB (and its WAL); when that write
// fails, every write request of the segment fails, since each was decided on the segment's view.
//
// On the event loop (execute_inline) a segment runs only if it can finish at once: reads whose
// every key is in a memtable or the block cache; small write segments whose stripes are all free
// (try_lock), whose current items are in memory, and whose WriteBatch RocksDB takes without a
// stall and without queueing behind another writer. Otherwise nothing of that segment happened
// (no reply, no counter, no write) and it is left to execute() on a worker. The locks, the
// order of a segment's steps and the replies are the same on both paths. A slow write on the
// loop (disk pressure) stops the loop writing for a while.
//
// Thread-safe: one Engine serves every worker thread and the loop; per-call state lives on the
// stack.
#pragma once

#include "common/meta_rules.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "common/item_rules.h"
#include "common/protocol/request.h"
#include "l2/flush_state.h"
#include "l2/key_locks.h"
#include "l2/l2_stats.h"
#include "l2/store.h"
#include "l2/write_history.h"

namespace rend::l2 {

// What the event loop may still execute itself (Engine::execute_inline) before handing work to
// the workers: keys of reads and of writes. The Server refills it on every turn of the loop, so
// inline work adds at most that much to a turn, however many clients are busy; past it the
// workers take over, in parallel with the loop.
struct InlineBudget {
  size_t read_keys = 0;  // also spent by requests that need no store (noop, version...), one each
  size_t write_keys = 0;
  size_t write_bytes = 0;  // values' bytes: many small segments of large values add up
};

// What the Engine reports in `stats` and the limits it applies.
struct EngineInfo {
  int64_t started_unix = 0;
  int threads = 0;
  size_t max_item_size = 0;       // also the size an append or prepend may not make an item exceed
  size_t max_get_reply = 0;       // max_get_reply_bytes(), common/get_reply_limit.h
  int64_t race_window_ms = 5000;  // tier_race_window_ms(), common/race_window.h
  // Until when (steady_clock ms) every tracked write counts as raced, as the history starts empty
  // (WriteHistory). The default trusts the empty history (tests).
  int64_t races_unknown_until_ms = INT64_MIN / 2;
  std::string socket_path;
  int tcp_port = 0;
};

class Engine {
 public:
  // Requests per segment: bounds a segment's reply (and the locks it holds) without giving up
  // most of MultiGet's and WriteBatch's gain.
  static constexpr size_t kSegmentKeys = 128;
  // The most a write segment may add to RocksDB when run on the event loop: a larger one (big
  // values, an append to a big item) goes to a worker, so the loop never writes much to the WAL.
  static constexpr size_t kInlineWriteBytes = 64 * 1024;
  // A write on the loop normally takes µs (memtable, WAL write without fsync; at a memtable switch
  // also a new WAL file). One that took longer than kSlowInlineWrite (the disk is under
  // pressure, or a memtable switch) leaves writes to the workers for kInlineWritePause: short,
  // since a switch happens every few thousand writes under load and is no sign of pressure.
  static constexpr std::chrono::microseconds kSlowInlineWrite{1000};
  static constexpr std::chrono::milliseconds kInlineWritePause{50};

  Engine(Store& store, L2Stats& stats, EngineInfo info)
      : store_(store),
        stats_(stats),
        info_(std::move(info)),
        history_(info_.race_window_ms, info_.races_unknown_until_ms) {}
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Executes requests[next..] in order, appending replies to `out`, and stops early once `out`
  // holds `reply_limit` bytes (the caller sends them and calls again), or before the next
  // segment once `cancelled` is set: its connection has closed, so no one will read the replies,
  // and a worker that gave up waiting for a write (it told its client SERVER_ERROR and may let
  // the next write of the key through) must not have it applied behind that one's back.
  // Returns the index of the first request not executed.
  // `who` names the client process (WriteHistory): its tracked accesses (Request::track_races) are
  // noted, and a successful tracked write of a key another process accessed within the race
  // window is answered with kDataTypeRacedWrite.
  size_t execute(std::span<const proto::Request> requests, size_t next, std::string& out, size_t reply_limit,
                 const std::atomic<bool>& cancelled, WriteHistory::Accessor who = 0);

  // execute() for the event loop: runs segments from requests[next] while each can be done
  // without I/O or waiting (see above), its keys fit in what is left of `budget` (which it
  // spends; a segment never runs in part) and `out` is below `reply_limit`. Stops before a
  // flush_all or stats. Returns the index of the first request not executed, `next` if none:
  // the caller hands the rest to execute() on a worker.
  size_t execute_inline(std::span<const proto::Request> requests, size_t next, std::string& out, size_t reply_limit,
                        InlineBudget& budget, WriteHistory::Accessor who = 0);

  L2Stats& stats() { return stats_; }
  const WriteHistory& history() const { return history_; }
  // For tests: holding a key's stripe stands for a write segment in progress on that key.
  KeyLocks& key_locks() { return locks_; }

 private:
  enum class Kind : uint8_t { kRead, kWrite, kLocal, kBarrier };
  enum class Where : uint8_t { kWorker, kLoop };
  static Kind kind_of(const proto::Request& r);
  // The end of the segment that starts at requests[i] (not a barrier), its kind and its keys.
  static size_t segment_end(std::span<const proto::Request> requests, size_t i, Kind& kind, size_t& keys);
  // Returns how many of the segment's requests it answered: it stops once `out` reaches
  // `reply_limit` (reads change nothing, so the rest is simply read again next round).
  // kLoop: nullopt, with nothing done, when some key is not in memory.
  std::optional<size_t> run_reads(std::span<const proto::Request> segment, std::string& out, size_t reply_limit,
                                  Where where, WriteHistory::Accessor who);
  // kLoop: false, with nothing done, when the segment cannot finish without waiting.
  // (engine_writes.cc, in the steps below.)
  bool run_writes(std::span<const proto::Request> segment, std::string& out, Where where, WriteHistory::Accessor who);
  struct WritePlan;       // which keys a write segment locks and reads, and their current items
  struct WriteDecisions;  // per key of each write request: what apply_change() decided
  bool refuse_writes(std::span<const proto::Request> segment, std::string& out);
  WritePlan plan_writes(std::span<const proto::Request> segment);
  // Under the stripes: reads the current items (kLoop: false if one is not in memory).
  bool load_current(WritePlan& plan, uint32_t now, const FlushState& flush, bool on_loop);
  void decide(std::span<const proto::Request> segment, WritePlan& plan, uint32_t now, const CasFn& next_cas,
              rocksdb::WriteBatch& batch, WriteDecisions& decisions);
  rocksdb::Status commit(rocksdb::WriteBatch& batch, bool on_loop);
  void note_races(WriteDecisions& decisions, WriteHistory::Accessor who);
  void reply_writes(std::span<const proto::Request> segment, const WriteDecisions& decisions,
                    const rocksdb::Status& written, std::string& out);
  // Meta commands (common/meta_rules.h) in a write segment: decided like a write, answered with
  // memcached's reply (text) or that reply and its summary (a worker's kMeta, meta_wire.h).
  static bool is_meta(proto::Command c);
  Change decide_meta(const proto::Request& r, std::string_view key, const Item* current, uint32_t now,
                     const CasFn& next_cas, MetaReply& reply);
  void append_meta_reply(std::string& out, const proto::Request& r, const Change& c, const MetaReply& reply,
                         bool raced);
  void run_barrier(const proto::Request& r, std::string& out);
  void run_local(const proto::Request& r, std::string& out);
  void run_stats(const proto::Request& r, std::string& out);

  Store& store_;
  L2Stats& stats_;
  KeyLocks locks_;
  EngineInfo info_;
  WriteHistory history_;
  // steady_clock ticks before which the loop writes nothing itself (see kSlowInlineWrite).
  std::atomic<int64_t> inline_writes_paused_until_{0};
};

}  // namespace rend::l2
