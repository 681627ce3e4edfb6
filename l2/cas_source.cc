#include "l2/cas_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace rend::l2 {

CasSource::CasSource(uint64_t first, std::function<bool(uint64_t)> persist)
    : next_(std::max<uint64_t>(first, 1)), persist_(std::move(persist)) {}

bool CasSource::start() {
  std::lock_guard<std::mutex> lock(lease_mutex_);
  const uint64_t end = next_.load() + kLease;
  if (!persist_(end)) return false;
  lease_end_.store(end, std::memory_order_release);
  return true;
}

uint64_t CasSource::next() {
  const uint64_t v = next_.fetch_add(1, std::memory_order_relaxed);
  if (v < lease_end_.load(std::memory_order_acquire)) return v;
  std::lock_guard<std::mutex> lock(lease_mutex_);
  // Another thread may have extended the lease while we waited.
  if (v >= lease_end_.load(std::memory_order_acquire)) {
    const uint64_t end = v + kLease;
    if (!persist_(end)) {
      // Still unique within this run; only a restart with the clock set back could repeat it.
      spdlog::error("cannot persist the CAS lease; CAS uniqueness across a restart relies on the clock");
    }
    lease_end_.store(end, std::memory_order_release);
  }
  return v;
}

std::optional<uint64_t> CasSource::try_next() {
  uint64_t v = next_.load(std::memory_order_relaxed);
  do {
    if (v >= lease_end_.load(std::memory_order_acquire)) return std::nullopt;
  } while (!next_.compare_exchange_weak(v, v + 1, std::memory_order_relaxed));
  return v;
}

}  // namespace rend::l2
