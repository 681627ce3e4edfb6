#include "worker/delayed_burials.h"

namespace rend::worker {

void DelayedBurials::add(std::string key, uint64_t now_ms) {
  const uint64_t due = now_ms + window_ms_;
  if (flush_pending_ || queue_.size() >= max_keys_) {
    // The flush covers every key queued so far, so they need not wait on their own.
    queue_.clear();
    flush_pending_ = true;
    flush_due_ms_ = due;
    return;
  }
  queue_.emplace_back(due, std::move(key));  // one window for all: due times arrive in order
}

void DelayedBurials::run_due(uint64_t now_ms, const std::function<void(std::string)>& bury,
                             const std::function<void()>& bury_all) {
  while (!queue_.empty() && queue_.front().first <= now_ms) {
    std::string key = std::move(queue_.front().second);
    queue_.pop_front();
    bury(std::move(key));
  }
  if (flush_pending_ && flush_due_ms_ <= now_ms) {
    flush_pending_ = false;
    bury_all();
  }
}

}  // namespace rend::worker
