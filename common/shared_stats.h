// Counters every worker keeps in shared memory, one slot per worker, summed by whoever reports.
//
// The supervisor creates the block (a memfd) before starting any worker and keeps it for its whole
// life, so a worker restarted into its slot keeps counting from where the dead one stopped: a
// counter never goes backwards. Each slot has exactly one writer (its worker), so updates are a
// relaxed load and store, no locked instruction and no syscall on the hot path. Readers (stats,
// metrics) may see a slightly stale value, never a torn one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/request_metrics.h"

namespace rend {

// name, kind: "counter" only ever grows; "gauge" is a current level reset when a worker starts.
#define REND_WORKER_COUNTERS(X)    \
  X(curr_connections, gauge)       \
  X(total_connections, counter)    \
  X(rejected_connections, counter) \
  X(accept_pauses, counter)        \
  X(idle_kicks, counter)           \
  X(cmd_get, counter)              \
  X(cmd_set, counter)              \
  X(cmd_flush, counter)            \
  X(cmd_touch, counter)            \
  X(get_hits, counter)             \
  X(get_misses, counter)           \
  X(delete_hits, counter)          \
  X(delete_misses, counter)        \
  X(incr_hits, counter)            \
  X(incr_misses, counter)          \
  X(decr_hits, counter)            \
  X(decr_misses, counter)          \
  X(cas_hits, counter)             \
  X(cas_badval, counter)           \
  X(cas_misses, counter)           \
  X(touch_hits, counter)           \
  X(touch_misses, counter)         \
  X(store_too_large, counter)      \
  X(protocol_errors, counter)      \
  X(bytes_read, counter)           \
  X(bytes_written, counter)        \
  X(l1_requests, counter)          \
  X(l1_errors, counter)            \
  X(l1_timeouts, counter)          \
  X(l1_reconnects, counter)        \
  X(l1_connections_up, gauge)      \
  X(l2_requests, counter)          \
  X(l2_errors, counter)            \
  X(l2_timeouts, counter)          \
  X(l2_reconnects, counter)        \
  X(l2_connections_up, gauge)      \
  X(closed_connections, counter)   \
  X(backfills, counter)            \
  X(backfill_errors, counter)      \
  X(backfills_skipped, counter)    \
  X(l2_fallbacks, counter)         \
  X(l2_write_failures, counter)    \
  X(raced_writes, counter)         \
  X(handed_over_connections, counter)

enum class Counter : uint16_t {
#define REND_COUNTER_ENUM(name, kind) name,
  REND_WORKER_COUNTERS(REND_COUNTER_ENUM)
#undef REND_COUNTER_ENUM
      kCount
};

inline constexpr size_t kCounterCount = static_cast<size_t>(Counter::kCount);
inline constexpr size_t kMaxWorkerSlots = 64;

std::string_view counter_name(Counter c);
bool counter_is_gauge(Counter c);

// One worker process's counters. Each entry has a single writer, the worker that owns it, so
// updates need no locked instruction. A worker slot has kEntriesPerSlot entries because a roll
// overlaps two processes in one slot (the draining worker and its replacement): the supervisor
// gives each new process an entry no live process owns. Counters carry on in an entry from one
// owner to the next and readers sum a slot's entries; gauges describe the owner alone, and the
// supervisor zeroes them when it exits, however it exits.
struct WorkerSlot {
  std::atomic<int64_t> pid;
  std::atomic<int64_t> started_unix;
  std::atomic<uint64_t> values[kCounterCount];
  RequestMetrics requests;
};
inline constexpr size_t kEntriesPerSlot = 4;

// rend-l2 publishes its RocksDB figures here (gauges, refreshed periodically by rend-l2).
#define REND_L2_GAUGES(X)     \
  X(live_data_bytes)          \
  X(sst_files_bytes)          \
  X(pending_compaction_bytes) \
  X(write_stall_micros)       \
  X(block_cache_hits)         \
  X(block_cache_misses)       \
  X(disk_bytes)               \
  X(keys_estimate)            \
  X(damaged_stores)           \
  X(write_errors)             \
  X(write_stops)              \
  X(writable)

enum class L2Gauge : uint16_t {
#define REND_L2_GAUGE_ENUM(name) name,
  REND_L2_GAUGES(REND_L2_GAUGE_ENUM)
#undef REND_L2_GAUGE_ENUM
      kCount
};
inline constexpr size_t kL2GaugeCount = static_cast<size_t>(L2Gauge::kCount);
std::string_view l2_gauge_name(L2Gauge g);

struct L2Slot {
  std::atomic<int64_t> pid;
  std::atomic<uint64_t> values[kL2GaugeCount];
};

struct SharedStatsBlock {
  uint64_t magic;
  uint32_t version;
  uint32_t slots;
  int64_t supervisor_started_unix;
  WorkerSlot entry[kMaxWorkerSlots][kEntriesPerSlot];
  L2Slot l2;
};

// A view of the mapped block. Owns the mapping (unmapped on destruction), not the fd.
class SharedStats {
 public:
  // Supervisor: creates and maps a fresh block; returns the fd to hand to children (-1 on error).
  static int create(SharedStats& out);
  // Child: maps the block created by the supervisor. Returns false if fd is not such a block.
  static bool attach(int fd, SharedStats& out);

  SharedStats() = default;
  SharedStats(const SharedStats&) = delete;
  SharedStats& operator=(const SharedStats&) = delete;
  SharedStats(SharedStats&& other) noexcept;
  SharedStats& operator=(SharedStats&& other) noexcept;
  ~SharedStats();

  SharedStatsBlock* block() const { return block_; }
  WorkerSlot& entry(size_t slot, size_t k) const { return block_->entry[slot][k]; }
  // Whether a worker ever ran in the slot (its counters are then reported, even at zero).
  bool slot_used(size_t slot) const;
  // The sum over a slot's entries of what `read` reads from each (entries never used skipped).
  template <class Read>
  uint64_t sum(size_t slot, Read read) const {
    uint64_t total = 0;
    for (const WorkerSlot& e : block_->entry[slot]) {
      if (e.pid.load(std::memory_order_relaxed) != 0) total += read(e);
    }
    return total;
  }
  // One counter or gauge of a slot, and over every slot.
  uint64_t value(size_t slot, Counter c) const;
  uint64_t total(Counter c) const;
  // Zeroes an entry's gauges: its owner has exited.
  void clear_gauges(size_t slot, size_t k) const;

 private:
  SharedStatsBlock* block_ = nullptr;
};

// Single-writer increment: no read-modify-write instruction needed.
inline void bump(WorkerSlot& s, Counter c, uint64_t n = 1) {
  auto& v = s.values[static_cast<size_t>(c)];
  v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void drop(WorkerSlot& s, Counter c, uint64_t n = 1) {
  auto& v = s.values[static_cast<size_t>(c)];
  v.store(v.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
}
inline void set_value(WorkerSlot& s, Counter c, uint64_t n) {
  s.values[static_cast<size_t>(c)].store(n, std::memory_order_relaxed);
}

}  // namespace rend
