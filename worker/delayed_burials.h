// Keys whose L1 copy is buried once more when the race window has passed (common/race_window.h).
//
// rend-l2 flags a write that came within the window after another worker's write of the same key
// (l2/write_history.h): the other worker's L1 step may still land after ours and leave L1 with
// the older value. Once the window has passed, every such step has landed or been buried, so a
// tombstone then leaves L1 without a stale copy (the next read after it goes to L2).
//
// Bounded: past max_keys pending keys, the keys go and a flush of L1 once the last of them is
// due stands for them all. That time is fixed once the flush is pending: keys that overflow
// meanwhile wait for a second flush, so a steady stream of raced writes cannot put burials off
// for ever (each key waits at most two windows). Not thread-safe: the worker's loop only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>

namespace rend::worker {

class DelayedBurials {
 public:
  static constexpr size_t kMaxKeys = 100000;

  explicit DelayedBurials(uint64_t window_ms, size_t max_keys = kMaxKeys)
      : window_ms_(window_ms), max_keys_(max_keys) {}

  void add(std::string key, uint64_t now_ms);
  // Buries each key that is due by now_ms (bury), or flushes L1 (bury_all) for the keys that
  // overflowed once they are all due.
  void run_due(uint64_t now_ms, const std::function<void(std::string)>& bury, const std::function<void()>& bury_all);
  bool empty() const { return queue_.empty() && !flush_pending_ && !next_flush_pending_; }

 private:
  uint64_t window_ms_;
  size_t max_keys_;
  std::deque<std::pair<uint64_t, std::string>> queue_;  // (due, key), due ascending
  bool flush_pending_ = false;
  uint64_t flush_due_ms_ = 0;        // fixed once pending
  bool next_flush_pending_ = false;  // for keys that overflowed while a flush was pending
  uint64_t next_flush_due_ms_ = 0;
};

}  // namespace rend::worker
