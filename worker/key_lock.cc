#include "worker/key_lock.h"

#include <utility>
#include <vector>

namespace rend::worker {

void KeyLock::acquire(std::string_view key, bool exclusive, std::function<void()> start) {
  auto [it, inserted] = keys_.try_emplace(std::string(key));
  State& s = it->second;
  if (s.waiting.empty() && can_grant(s, exclusive)) {
    if (exclusive) {
      s.writer = true;
    } else {
      s.readers++;
    }
    start();
    return;
  }
  s.waiting.push_back(Waiter{exclusive, std::move(start)});
}

void KeyLock::release(std::string_view key, bool exclusive) {
  auto it = keys_.find(std::string(key));
  if (it == keys_.end()) return;
  State& s = it->second;
  if (exclusive) {
    s.writer = false;
  } else {
    s.readers--;
  }
  // Grant in arrival order; start them after the bookkeeping, since a start may release at once.
  std::vector<std::function<void()>> granted;
  while (!s.waiting.empty() && can_grant(s, s.waiting.front().exclusive)) {
    Waiter w = std::move(s.waiting.front());
    s.waiting.pop_front();
    if (w.exclusive) {
      s.writer = true;
    } else {
      s.readers++;
    }
    granted.push_back(std::move(w.start));
  }
  if (s.readers == 0 && !s.writer && s.waiting.empty()) keys_.erase(it);
  for (auto& start : granted) ready_.push_back(std::move(start));
  // A start may finish at once (a backend that is down fails the step synchronously) and
  // release again, granting the next waiter: run such chains from this loop, not nested in it,
  // or thousands of pipelined requests waiting on one key would nest as deep and overflow the
  // stack.
  if (running_ready_) return;
  running_ready_ = true;
  while (!ready_.empty()) {
    std::function<void()> start = std::move(ready_.front());
    ready_.pop_front();
    start();
  }
  running_ready_ = false;
}

}  // namespace rend::worker
