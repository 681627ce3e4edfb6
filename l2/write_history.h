// Which process last wrote each recently written key, and when: how rend-l2 tells a worker that
// its write raced another worker's (common/race_window.h).
//
// Why: workers order the steps of one key only among themselves. Two writes of a key on two
// workers may reach L2 in one order and L1 in the other, leaving L1 with the older value for as
// long as it lives there. L2 sees every write in its true order, so it flags the later one of two
// writes by different processes within the window; that worker buries its L1 copy again once
// the window has passed, when the other worker's L1 step has landed or been buried itself (see
// worker/tiered.cc). Writes of one process never flag each other: a worker orders them itself.
//
// Bounded: a fixed table of 4-way buckets keyed by a 64-bit hash of the key (2^17 buckets, 14 MiB:
// room for the writes of about 100k keys per second over a 5 s window). When a bucket must
// forget a writer still inside the window, every key of that bucket reads as raced until the
// window has passed: a spurious flag costs a burial, a missed one would leave L1 stale.
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
  // A writer: a unix-socket peer's pid, or a TCP connection's own number (see Connection).
  using Writer = uint64_t;

  explicit WriteHistory(int64_t window_ms, size_t buckets = size_t{1} << 17);

  // Records that `writer` wrote `key` at `now_ms` (a steady clock); true if a different writer
  // wrote it less than the window before (or the table may have forgotten one that did).
  bool note_write(std::string_view key, Writer writer, int64_t now_ms);

  int64_t window_ms() const { return window_ms_; }

 private:
  static constexpr size_t kWays = 4;
  static constexpr size_t kLocks = 256;
  // An unused entry is one written long before any window (and matches only a key whose hash
  // is 0, which then finds nothing live).
  struct Entry {
    uint64_t hash = 0;
    int64_t at_ms = INT64_MIN / 2;
    Writer writer = 0;
  };
  struct Bucket {
    Entry ways[kWays];
    int64_t forgot_live_at_ms = 0;  // when it last dropped an entry still inside the window
    bool forgot_live = false;
  };

  int64_t window_ms_;
  std::vector<Bucket> buckets_;
  std::unique_ptr<std::mutex[]> locks_;
};

}  // namespace rend::l2
