#include "l2/write_history.h"

#include <xxhash.h>

namespace rend::l2 {

WriteHistory::WriteHistory(int64_t window_ms, size_t buckets)
    : window_ms_(window_ms), buckets_(buckets), locks_(new std::mutex[kLocks]) {}

bool WriteHistory::note_write(std::string_view key, Writer writer, int64_t now_ms) {
  const uint64_t hash = XXH3_64bits(key.data(), key.size());
  const size_t index = static_cast<size_t>(hash % buckets_.size());
  const auto live = [&](int64_t at_ms) { return now_ms - at_ms < window_ms_; };
  std::lock_guard<std::mutex> guard(locks_[index % kLocks]);
  Bucket& b = buckets_[index];
  for (Entry& e : b.ways) {
    if (e.hash == hash) {
      const bool raced = e.writer != writer && live(e.at_ms);
      e.at_ms = now_ms;
      e.writer = writer;
      return raced;
    }
  }
  // Not remembered: raced only if the bucket recently forgot a writer that may have been this
  // key's.
  const bool raced = b.forgot_live && live(b.forgot_live_at_ms);
  Entry* victim = &b.ways[0];
  for (Entry& e : b.ways) {
    if (e.at_ms < victim->at_ms) victim = &e;  // unused entries are the oldest
  }
  if (live(victim->at_ms)) {
    b.forgot_live = true;
    b.forgot_live_at_ms = now_ms;
  }
  *victim = Entry{hash, now_ms, writer};
  return raced;
}

}  // namespace rend::l2
