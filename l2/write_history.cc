#include "l2/write_history.h"

#include <xxhash.h>

#include <chrono>
#include <climits>

namespace rend::l2 {

WriteHistory::WriteHistory(int64_t window_ms, int64_t unknown_until_ms, size_t buckets)
    : window_ms_(window_ms),
      unknown_until_ms_(unknown_until_ms),
      start_ms_(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
              .count()),
      buckets_(buckets),
      locks_(new std::mutex[kLocks]),
      overflows_(new uint64_t[kLocks]()) {}

bool WriteHistory::note(std::string_view key, Accessor who, int64_t now_ms, bool write) {
  if (who == 0) return false;
  const uint32_t now = static_cast<uint32_t>(now_ms - start_ms_);
  const auto live = [&](uint32_t at) { return int64_t{static_cast<uint32_t>(now - at)} < window_ms_; };
  const bool starting = write && now_ms < unknown_until_ms_;
  const uint64_t hash = XXH3_64bits(key.data(), key.size());
  const size_t index = static_cast<size_t>(hash % buckets_.size());
  std::lock_guard<std::mutex> guard(locks_[index % kLocks]);
  Bucket& b = buckets_[index];
  for (Entry& e : b.ways) {
    if (e.last == 0 || e.hash != hash) continue;
    const bool raced = (e.last != who && live(e.last_at)) || (e.other != 0 && e.other != who && live(e.other_at));
    if (e.last != who) {
      e.other = e.last;
      e.other_at = e.last_at;
      e.last = who;
    }
    e.last_at = now;
    return write && (raced || starting);
  }
  // Not remembered: raced only if the bucket recently forgot an entry that may have been this key's.
  const bool raced = b.forgot && live(b.forgot_at);
  Entry* victim = &b.ways[0];
  for (Entry& e : b.ways) {
    if (e.last == 0) {
      victim = &e;
      break;
    }
    if (static_cast<uint32_t>(now - e.last_at) > static_cast<uint32_t>(now - victim->last_at)) victim = &e;
  }
  if (victim->last != 0 && live(victim->last_at)) {
    b.forgot = true;
    b.forgot_at = now;
    ++overflows_[index % kLocks];
  }
  *victim = Entry{hash, who, now, 0, 0};
  return write && (raced || starting);
}

uint64_t WriteHistory::overflows() const {
  uint64_t total = 0;
  for (size_t i = 0; i < kLocks; ++i) {
    std::lock_guard<std::mutex> guard(locks_[i]);
    total += overflows_[i];
  }
  return total;
}

}  // namespace rend::l2
