// Which processes recently accessed each key, and when: how rend-l2 tells a worker that its write
// raced another worker's access to the key (common/race_window.h).
//
// Why: workers order the steps of one key only among themselves. Two writes of a key on two
// workers may reach L2 in one order and L1 in the other, leaving L1 with the older value for as
// long as it lives there. Likewise a read on one worker may fetch a value from L2 just before
// another worker's write and backfill it into L1 after that write's L1 step, where the step
// leaves no copy that would refuse the backfill (a replace that missed). L2 sees every access in
// its true order, so it flags a write that comes within the window after another process's
// write or backfilling read; that worker buries its L1 copy again once the window has passed,
// when the other worker's L1 step has landed or been buried itself (worker/delayed_burials.h).
// Accesses of one process never flag each other: a worker orders them itself.
//
// Only accesses a worker asks to track (bin::kDataTypeTrackRaces) are noted: other clients of
// rend-l2 neither count nor see the flag. Right after start rend-l2 knows nothing of what came
// before; an L1 step answered by the previous rend-l2 lands within L1's timeout, so every
// tracked write counts as raced until then (plus a second; common/race_window.h).
//
// Bounded: a fixed table of 2^18 4-way buckets (1M 24-byte entries, 27 MB) keyed by a 64-bit
// hash of the key: room for about 200k tracked accesses per second over a 5 s window.
// When a bucket must forget an entry still inside the window, every key of that bucket counts as
// raced until the window has passed: a spurious flag costs a burial, a missed one would leave L1
// stale (counted as l2_race_history_overflows).
//
// Thread-safe: buckets are guarded by a fixed set of mutexes. Two writes of one key are noted in
// the order RocksDB applied them because the engine notes them under the key's stripe lock.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace rend::l2 {

class WriteHistory {
 public:
  // Who accesses: a unix-socket peer's pid, or (with the top bit set) a TCP connection's own
  // number (see Connection). 0 is no one: its accesses are not noted.
  using Accessor = uint32_t;

  // now_ms values are a steady clock's. Tracked writes before `unknown_until_ms` count as raced
  // (INT64_MIN / 2: trust the empty history).
  WriteHistory(int64_t window_ms, int64_t unknown_until_ms, size_t buckets = size_t{1} << 18);

  // Notes that `who` wrote `key` at now_ms; true if another accessor accessed it less than the
  // window before (or the table may have forgotten one that did).
  bool note_write(std::string_view key, Accessor who, int64_t now_ms) { return note(key, who, now_ms, true); }
  // Notes a read whose value `who` will backfill into L1.
  void note_read(std::string_view key, Accessor who, int64_t now_ms) { note(key, who, now_ms, false); }

  uint64_t overflows() const;

 private:
  static constexpr size_t kWays = 4;
  static constexpr size_t kLocks = 256;
  // A key's two latest accessors: `last`, and the latest one other than `last`. Times are ms
  // since the history was made, modulo 2^32 (compared by difference, so a wrap after 49 days reads, at
  // worst, as a spurious race). An entry with last == 0 is unused.
  struct Entry {
    uint64_t hash = 0;
    Accessor last = 0;
    uint32_t last_at = 0;
    Accessor other = 0;
    uint32_t other_at = 0;
  };
  struct Bucket {
    Entry ways[kWays];
    uint32_t forgot_at = 0;  // when it last dropped an entry still inside the window
    bool forgot = false;
  };

  bool note(std::string_view key, Accessor who, int64_t now_ms, bool write);

  int64_t window_ms_;
  int64_t unknown_until_ms_;
  int64_t start_ms_;  // the origin of the entries' 32-bit times
  std::vector<Bucket> buckets_;
  std::unique_ptr<std::mutex[]> locks_;
  std::unique_ptr<uint64_t[]> overflows_;  // per lock, under it
};

}  // namespace rend::l2
