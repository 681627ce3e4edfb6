// rend-l2's counters: memcached's names where memcached has the same counter, l2_* otherwise.
//
// l2_inline_reads / l2_offloaded_reads (and _writes): read (get, gets, GetE; a text multi-get
// counts once) and write requests executed on the event loop / on a worker thread.
// l2_inline_fallbacks: attempts on the loop that found their data not in memory (or a stripe
// lock busy, a write stall...) and went to a worker instead. l2_inline_write_pauses: times the
// loop stopped writing itself for a while because a write was slow (disk pressure).
// l2_raced_writes: tracked writes answered as racing another process's access to the key
// (write_history.h; its l2_race_history_overflows is reported next to these).
//
// Written by the event loop (connections, bytes) and the worker threads (commands) concurrently,
// so every counter is a relaxed atomic: a report may be a moment stale, never torn.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rend::l2 {

#define REND_L2_COUNTERS(X) \
  X(curr_connections)       \
  X(total_connections)      \
  X(cmd_get)                \
  X(cmd_set)                \
  X(cmd_flush)              \
  X(cmd_touch)              \
  X(cmd_meta)               \
  X(get_hits)               \
  X(get_misses)             \
  X(get_expired)            \
  X(get_flushed)            \
  X(delete_misses)          \
  X(delete_hits)            \
  X(incr_misses)            \
  X(incr_hits)              \
  X(decr_misses)            \
  X(decr_hits)              \
  X(cas_misses)             \
  X(cas_hits)               \
  X(cas_badval)             \
  X(touch_hits)             \
  X(touch_misses)           \
  X(store_too_large)        \
  X(bytes_read)             \
  X(bytes_written)          \
  X(total_items)            \
  X(protocol_errors)        \
  X(l2_batches)             \
  X(l2_batch_requests)      \
  X(l2_read_errors)         \
  X(l2_write_errors)        \
  X(l2_inline_reads)        \
  X(l2_offloaded_reads)     \
  X(l2_inline_writes)       \
  X(l2_offloaded_writes)    \
  X(l2_inline_fallbacks)    \
  X(l2_inline_write_pauses) \
  X(l2_raced_writes)

enum class L2Counter : uint16_t {
#define REND_L2_ENUM(name) name,
  REND_L2_COUNTERS(REND_L2_ENUM)
#undef REND_L2_ENUM
      kCount
};

inline constexpr size_t kL2CounterCount = static_cast<size_t>(L2Counter::kCount);

std::string_view l2_counter_name(L2Counter c);

class L2Stats {
 public:
  void add(L2Counter c, uint64_t n = 1) { v_[static_cast<size_t>(c)].fetch_add(n, std::memory_order_relaxed); }
  void sub(L2Counter c, uint64_t n = 1) { v_[static_cast<size_t>(c)].fetch_sub(n, std::memory_order_relaxed); }
  uint64_t get(L2Counter c) const { return v_[static_cast<size_t>(c)].load(std::memory_order_relaxed); }
  // `stats reset`: every counter but the current-connection gauge.
  void reset();

 private:
  std::atomic<uint64_t> v_[kL2CounterCount] = {};
};

}  // namespace rend::l2
