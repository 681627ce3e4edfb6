// Request counters and latency histograms kept per worker in the shared stats block, by tier
// (what the client saw, what L1 answered, what L2 answered), command and result.
//
// Layout and names are shared by the writers (workers) and the reader (the supervisor's
// Prometheus collector). Histograms store per-bucket counts (not cumulative) plus the sum, each
// updated by the slot's single writer; the reader accumulates.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <time.h>

namespace rend {

enum class Tier : uint8_t { kClient, kL1, kL2, kCount };

enum class MetricCommand : uint8_t {
  kGet, kGets, kGat, kGats, kGetE, kSet, kAdd, kReplace, kAppend, kPrepend, kCas, kDelete, kIncr, kDecr,
  kTouch, kFlushAll, kStats, kVersion, kNoop, kOther, kCount
};

enum class Result : uint8_t { kHit, kMiss, kStored, kNotStored, kExists, kOk, kError, kCount };

inline constexpr size_t kTiers = static_cast<size_t>(Tier::kCount);
inline constexpr size_t kMetricCommands = static_cast<size_t>(MetricCommand::kCount);
inline constexpr size_t kResults = static_cast<size_t>(Result::kCount);

// Upper bounds in microseconds; one more bucket (+Inf) follows. Chosen to resolve a
// few-microsecond proxy hop as well as a multi-second stall.
inline constexpr std::array<uint32_t, 18> kLatencyBoundsUs = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000};
inline constexpr size_t kLatencyBuckets = kLatencyBoundsUs.size() + 1;

std::string_view tier_name(Tier t);
std::string_view metric_command_name(MetricCommand c);
std::string_view result_name(Result r);

struct CommandHistogram {
  std::atomic<uint64_t> buckets[kLatencyBuckets];
  std::atomic<uint64_t> sum_ns;
};

struct RequestMetrics {
  std::atomic<uint64_t> requests[kTiers][kMetricCommands][kResults];
  CommandHistogram latency[kTiers][kMetricCommands];
};

// Monotonic nanoseconds (vDSO: no syscall).
inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

inline size_t latency_bucket(uint64_t ns) {
  const uint64_t us = ns / 1000;
  size_t i = 0;
  while (i < kLatencyBoundsUs.size() && us > kLatencyBoundsUs[i]) ++i;
  return i;
}

// Single-writer updates (see shared_stats.h): a relaxed load and store, no locked instruction.
inline void add_relaxed(std::atomic<uint64_t>& v, uint64_t n) {
  v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

inline void record_request(RequestMetrics& m, Tier t, MetricCommand c, Result r, uint64_t latency_ns) {
  const auto ti = static_cast<size_t>(t);
  const auto ci = static_cast<size_t>(c);
  add_relaxed(m.requests[ti][ci][static_cast<size_t>(r)], 1);
  CommandHistogram& h = m.latency[ti][ci];
  add_relaxed(h.buckets[latency_bucket(latency_ns)], 1);
  add_relaxed(h.sum_ns, latency_ns);
}

}  // namespace rend
