// Per-key ordering within a worker: a multi-step operation on a key (L2 then L1, or an L1 miss
// then an L2 read then a backfill) finishes before the next operation on that key starts.
//
// Reads share a key, writes have it alone, and waiters run strictly in arrival order, so a
// client's pipelined "set k; get k" is answered as memcached would, and a backfill can never
// overtake a write. Keys with nothing in progress hold no memory.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rend::worker {

class KeyLock {
 public:
  // Runs `start` now if the key is free for this kind of access, or when it becomes free.
  void acquire(std::string_view key, bool exclusive, std::function<void()> start);
  void release(std::string_view key, bool exclusive);
  size_t keys_held() const { return keys_.size(); }

 private:
  struct Waiter {
    bool exclusive;
    std::function<void()> start;
  };
  struct State {
    int readers = 0;
    bool writer = false;
    std::deque<Waiter> waiting;
  };
  static bool can_grant(const State& s, bool exclusive) { return !s.writer && (!exclusive || s.readers == 0); }

  std::unordered_map<std::string, State> keys_;
  std::deque<std::function<void()>> ready_;  // granted, not yet started (see release())
  bool running_ready_ = false;
};

}  // namespace rend::worker
