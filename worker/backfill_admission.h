// Which L2 hits are copied into L1 (l2.backfill_admission). "all" backfills every L2 hit that
// missed L1. "frequency" is TinyLFU's admission filter (Einziger, Friedman, Manes: "TinyLFU: A
// Highly Efficient Cache Admission Policy"): when L1 is much smaller than the working set, keys
// read once push out keys that are read again, so a key is copied only once it has missed L1 at
// least twice within the sketch's window, or while L1 still has room (it has not evicted lately).
//
// The state is per worker: no locks, no shared memory. A key is read through every worker, so
// each one sees a share of its misses; with a few workers a key needs a few more reads before
// it is admitted on all of them, which is what the filter is for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace rend::worker {

class Worker;

// How often a key missed L1 lately: a count-min sketch of 4 rows of saturating counters (15 at
// most, as 4-bit counters would), behind a doorkeeper bit set that absorbs each key's first miss
// so one-off keys do not crowd the counters. Every 10 x width recorded misses all counters halve
// and the doorkeeper is cleared: frequencies are of the recent past.
class FrequencySketch {
 public:
  explicit FrequencySketch(size_t width);  // counters per row, rounded up to a power of two

  // Records one miss of the key whose xxh3 is `hash`; returns the estimate after recording.
  uint32_t record(uint64_t hash);
  // Misses of the key within the window (0 for a key never recorded, up to 16).
  uint32_t estimate(uint64_t hash) const;

  size_t width() const { return width_; }
  uint64_t window() const { return window_; }

 private:
  size_t slot(uint64_t hash, unsigned row) const;
  bool door_has(uint64_t hash) const;
  void door_add(uint64_t hash);
  void age();

  static constexpr unsigned kRows = 4;
  static constexpr uint8_t kMaxCount = 15;
  size_t width_;
  uint64_t window_;                // recorded misses between agings
  uint64_t recorded_ = 0;          // since the last aging
  std::vector<uint8_t> counters_;  // kRows rows of width_
  std::vector<uint64_t> door_;     // the doorkeeper: 32 bits per counter column
};

// Whether L1 has room, from memcached's `evictions` total. It is the honest signal: memcached
// counts an eviction exactly when it dropped a live item to store a new one, which is the churn
// admission is there to limit; its memory figures (`bytes`, `total_malloced`) say neither when a
// slab class is full nor when flushed items are free again. L1 is full from an eviction seen
// until kFullForMs without one: an admitted backfill into a full L1 evicts, so under a load that
// keeps L1 full the counter keeps growing, and a quiet stretch means L1 was emptied (a flush, a
// new memcached) or the load stopped.
class L1Room {
 public:
  static constexpr uint64_t kFullForMs = 30000;
  // memcached's evictions total, read at `now_ms`.
  void note_evictions(uint64_t total, uint64_t now_ms);
  bool has_room(uint64_t now_ms) const;

 private:
  bool seen_ = false;
  bool evicted_ = false;
  uint64_t last_total_ = 0;
  uint64_t last_eviction_ms_ = 0;
};

class BackfillAdmission {
 public:
  // `frequency` false: every L2 hit is backfilled, nothing is recorded.
  BackfillAdmission(bool frequency, size_t width);

  bool frequency() const { return sketch_ != nullptr; }
  // An L1 miss of a read that backfills on an L2 hit: records it and says whether that
  // backfill may happen.
  bool admit(std::string_view key, uint64_t now_ms);
  L1Room& room() { return room_; }

 private:
  std::unique_ptr<FrequencySketch> sketch_;
  L1Room room_;
};

// Reads memcached's evictions over the worker's own L1 connection about once a second, while
// admission is "frequency" (the worker's tick calls poll()). One stats request per second on one
// connection is a negligible load next to the reads it filters.
class L1RoomPoll {
 public:
  static constexpr uint64_t kIntervalMs = 1000;
  explicit L1RoomPoll(Worker& worker) : worker_(worker) {}
  void poll(uint64_t now_ms);

 private:
  class StatsRead;
  Worker& worker_;
  uint64_t next_ms_ = 0;
  std::shared_ptr<StatsRead> in_flight_;  // one at a time: a slow L1 gets no pile of stats
};

}  // namespace rend::worker
