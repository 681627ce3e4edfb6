// flush_all as memcached does it, without touching any item: a cutoff that makes older items
// invisible on read (and lets the compaction filter drop them later).
//
// memcached (1.6, CAS enabled): an immediate flush hides every item whose CAS is older than the
// flush; `flush_all N` hides, from time T = realtime(N) - 1 on, every item last written at or
// before T. We keep the same two cutoffs. Unlike memcached, a delayed flush that has come due is
// folded into a permanent cutoff before a newer one replaces it, so a later flush can never make
// an already-flushed item visible again (memcached overwrites its single `oldest_live`).
//
// A plain value type: the Store guards the live copy with a mutex and persists it, so a restart
// does not bring flushed items back.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace rend::l2 {

struct FlushState {
  uint64_t dead_below_cas = 0;        // items with a smaller CAS were flushed
  uint32_t dead_through_time = 0;     // items stored at or before this second were flushed
  uint32_t pending_through_time = 0;  // a delayed flush: from this second on, items stored at or
                                      // before it are flushed (0 = none pending)

  bool is_flushed(uint64_t cas, uint32_t stored_at, uint32_t now) const;

  // flush_all received at `now`. `delay` is the wire exptime (0 = now; <= 30 days relative, else
  // an absolute unix time). `cas_mark` is a freshly allocated CAS: every item written before the
  // flush has a smaller one, every item written after it a larger one.
  void apply_flush(uint32_t now, uint32_t delay, uint64_t cas_mark);

  std::string encode() const;
  bool decode(std::string_view s);

  bool operator==(const FlushState&) const = default;
};

// The live FlushState, shared by the request threads and RocksDB's compaction filter threads.
class FlushStateCell {
 public:
  FlushState get() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return state_;
  }
  void set(const FlushState& s) {
    std::lock_guard<std::mutex> lock(mutex_);
    state_ = s;
  }

 private:
  mutable std::mutex mutex_;
  FlushState state_;
};

}  // namespace rend::l2
