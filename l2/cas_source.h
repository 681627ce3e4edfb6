// CAS uniques for rend-l2: strictly increasing, across threads and across restarts.
//
// The counter starts at max(now in microseconds, the persisted lease) and hands out values from a
// lease it has durably recorded (in RocksDB's meta column family) before using it: when a value
// would pass the lease's end, the caller blocks until a new lease is written. After a crash the
// next start begins at or above the last lease, so no CAS is ever reused, even if the clock went
// back. The clock seed keeps values growing across restarts even if the lease was lost.
//
// Thread-safe. `persist` runs with an internal mutex held and must not call back in.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

namespace rend::l2 {

class CasSource {
 public:
  static constexpr uint64_t kLease = uint64_t{1} << 22;

  // `persist(end)` durably records "no CAS below `end` may be handed out again"; false on error.
  CasSource(uint64_t first, std::function<bool(uint64_t)> persist);
  CasSource(const CasSource&) = delete;
  CasSource& operator=(const CasSource&) = delete;

  // The first lease is written here; false when it could not be.
  bool start();
  uint64_t next();
  // next() for a caller that must not block (the event loop): nullopt instead of renewing the
  // lease, which a later next() on a worker thread does.
  std::optional<uint64_t> try_next();
  // The next value that will be handed out (for reports only).
  uint64_t peek() const { return next_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> next_;
  std::atomic<uint64_t> lease_end_{0};
  std::mutex lease_mutex_;
  std::function<bool(uint64_t)> persist_;
};

}  // namespace rend::l2
