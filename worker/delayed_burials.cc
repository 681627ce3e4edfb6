#include "worker/delayed_burials.h"

namespace rend::worker {

void DelayedBurials::add(std::string key, uint64_t now_ms) {
  const uint64_t due = now_ms + window_ms_;  // one window for all: due times arrive in order
  if (queue_.size() < max_keys_) {
    queue_.emplace_back(due, std::move(key));
    return;
  }
  // Over the limit: a flush due with the last of them stands for every key queued so far.
  queue_.clear();
  if (!flush_pending_) {
    flush_pending_ = true;
    flush_due_ms_ = due;
  } else {
    next_flush_pending_ = true;
    next_flush_due_ms_ = due;
  }
}

void DelayedBurials::run_due(uint64_t now_ms, const std::function<void(std::string)>& bury,
                             const std::function<void()>& bury_all) {
  while (!queue_.empty() && queue_.front().first <= now_ms) {
    std::string key = std::move(queue_.front().second);
    queue_.pop_front();
    bury(std::move(key));
  }
  if (flush_pending_ && flush_due_ms_ <= now_ms) {
    bury_all();
    flush_pending_ = next_flush_pending_;
    flush_due_ms_ = next_flush_due_ms_;
    next_flush_pending_ = false;
  }
}

}  // namespace rend::worker
