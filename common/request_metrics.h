// Request counters and latency histograms kept per worker in the shared stats block, by tier
// (what the client saw, what L1 answered, what L2 answered), command and result.
//
// Layout and names are shared by the writers (workers) and the reader (the supervisor's
// Prometheus collector). Histograms store per-bucket counts (not cumulative) plus the sum, each
// updated by the slot's single writer; the reader accumulates. Recording a request costs one
// address computation, a bucket lookup and three relaxed load+store pairs (no locked
// instruction), plus the clock reads it shares with its batch (MetricClockBatch).
#pragma once

#include <time.h>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rend {

enum class Tier : uint8_t { kClient, kL1, kL2, kCount };

enum class MetricCommand : uint8_t {
  kGet,
  kGets,
  kGat,
  kGats,
  kGetE,
  kSet,
  kAdd,
  kReplace,
  kAppend,
  kPrepend,
  kCas,
  kDelete,
  kIncr,
  kDecr,
  kTouch,
  kFlushAll,
  kStats,
  kVersion,
  kNoop,
  kOther,
  kMetaGet,         // mg
  kMetaSet,         // ms
  kMetaDelete,      // md
  kMetaArithmetic,  // ma
  kMetaDebug,       // me
  kCount
};

enum class Result : uint8_t { kHit, kMiss, kStored, kNotStored, kExists, kOk, kError, kCount };

inline constexpr size_t kTiers = static_cast<size_t>(Tier::kCount);
inline constexpr size_t kMetricCommands = static_cast<size_t>(MetricCommand::kCount);
inline constexpr size_t kResults = static_cast<size_t>(Result::kCount);

// Upper bounds in microseconds; one more bucket (+Inf) follows. Chosen to resolve a
// few-microsecond proxy hop as well as a multi-second stall.
inline constexpr std::array<uint32_t, 18> kLatencyBoundsUs = {10,     25,     50,     100,     250,     500,
                                                              1000,   2500,   5000,   10000,   25000,   50000,
                                                              100000, 250000, 500000, 1000000, 2500000, 5000000};
inline constexpr size_t kLatencyBuckets = kLatencyBoundsUs.size() + 1;

std::string_view tier_name(Tier t);
std::string_view metric_command_name(MetricCommand c);
std::string_view result_name(Result r);

// One tier and command: its requests by result and its latency histogram, side by side, so that
// recording a request computes one address for all three updates. 27 counters padded to 32, so
// that address is a shift rather than a multiplication.
struct alignas(256) CommandMetrics {
  std::atomic<uint64_t> requests[kResults];
  std::atomic<uint64_t> buckets[kLatencyBuckets];
  std::atomic<uint64_t> sum_ns;
};
static_assert(sizeof(CommandMetrics) == 256);

struct RequestMetrics {
  CommandMetrics by[kTiers][kMetricCommands];
};

// Monotonic nanoseconds (vDSO: no syscall).
inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The clock of the metrics: one reading per batch of work instead of one per timestamp. Within a
// batch, metric_clock_ns() returns the reading taken at its first call; outside any batch it
// reads the clock. A worker's event loop makes each poll phase a batch (begin() right before it
// polls, end() in its check phase): everything one poll delivered (the requests of every client
// read, the responses of every backend read) is stamped with the first reading after the poll
// returned, and a request's start, its backend request's sending, the response's arrival and the
// reply's completion share reads with the rest of that iteration instead of costing one each.
// Latencies are thus exact to within the time the worker spends on one iteration's callbacks
// (microseconds; more when it is saturated), as in event loops that cache their time.
// A scoped MetricClockBatch does the same for a block of code and restores the enclosing state.
// Per thread, so it needs no synchronisation; a batch that records nothing reads no clock.
class MetricClockBatch {
 public:
  MetricClockBatch() : saved_(batch_ns_) { batch_ns_ = kUnread; }
  ~MetricClockBatch() { batch_ns_ = saved_; }
  MetricClockBatch(const MetricClockBatch&) = delete;
  MetricClockBatch& operator=(const MetricClockBatch&) = delete;

  // A batch that is not a scope (the event loop's poll phase).
  static void begin() { batch_ns_ = kUnread; }
  static void end() { batch_ns_ = kNoBatch; }

  static uint64_t now_ns() {
    const uint64_t b = batch_ns_;
    return b > kUnread ? b : read_clock();
  }

 private:
  // Out of line, so that what callers inline stays small (a load and a compare).
  [[gnu::noinline]] static uint64_t read_clock() {
    const uint64_t now = monotonic_ns();
    if (batch_ns_ == kUnread) batch_ns_ = now;
    return now;
  }

  // Values no real reading has (monotonic time counts from boot, in nanoseconds).
  static constexpr uint64_t kNoBatch = 0;
  static constexpr uint64_t kUnread = 1;
  static inline thread_local uint64_t batch_ns_ = kNoBatch;
  uint64_t saved_;
};

inline uint64_t metric_clock_ns() { return MetricClockBatch::now_ns(); }

// Nanoseconds from `start_ns` to `now_ns` (metric_clock_ns() readings). Zero rather than a huge
// unsigned value when `start_ns` is the later one (taken in an inner batch that read the clock
// after the enclosing batch did).
inline uint64_t metric_elapsed_ns(uint64_t start_ns, uint64_t now_ns) {
  return now_ns > start_ns ? now_ns - start_ns : 0;
}
inline uint64_t metric_clock_since(uint64_t start_ns) { return metric_elapsed_ns(start_ns, metric_clock_ns()); }

// The bucket of a latency: how many bounds it exceeds in whole microseconds (ns / 1000 > bound,
// i.e. ns > bound * 1000 + 999). Two lookups by the latency's bit width and one compare instead
// of a scan over the bounds (it runs twice per request): the nanosecond thresholds are nearly 2x
// apart, so each power-of-two range of nanoseconds holds at most one of them (checked when the
// table is built).
namespace detail {
struct LatencyBucketTable {
  uint8_t below[65];       // by bit width: thresholds below the range, exceeded by every value in it
  uint64_t threshold[65];  // by bit width: the one threshold inside the range (UINT64_MAX: none)
};

constexpr LatencyBucketTable make_latency_bucket_table() {
  LatencyBucketTable t{};
  for (int w = 0; w <= 64; ++w) {
    const uint64_t lo = w == 0 ? 0 : uint64_t{1} << (w - 1);  // values of bit width w: [lo, hi]
    const uint64_t hi = w == 0 ? 0 : w == 64 ? ~uint64_t{0} : (uint64_t{1} << w) - 1;
    t.below[w] = 0;
    t.threshold[w] = ~uint64_t{0};
    for (const uint32_t bound : kLatencyBoundsUs) {
      const uint64_t ns = uint64_t{bound} * 1000 + 999;
      if (ns < lo) {
        ++t.below[w];
      } else if (ns < hi) {
        if (t.threshold[w] != ~uint64_t{0}) throw "two latency bounds within one power of two";
        t.threshold[w] = ns;
      }
    }
  }
  return t;
}
inline constexpr LatencyBucketTable kLatencyBucketTable = make_latency_bucket_table();
}  // namespace detail

inline size_t latency_bucket(uint64_t ns) {
  const int w = std::bit_width(ns);
  return detail::kLatencyBucketTable.below[w] + (ns > detail::kLatencyBucketTable.threshold[w] ? 1 : 0);
}

// Single-writer updates (see shared_stats.h): a relaxed load and store, no locked instruction.
inline void add_relaxed(std::atomic<uint64_t>& v, uint64_t n) {
  v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

inline void record_request(RequestMetrics& m, Tier t, MetricCommand c, Result r, uint64_t latency_ns) {
  // One base address for all three updates: the empty asm makes the compiler keep it in a
  // register (otherwise GCC rebuilds the whole index expression for each update).
  CommandMetrics* cm = &m.by[static_cast<size_t>(t)][static_cast<size_t>(c)];
  asm("" : "+r"(cm));
  add_relaxed(cm->requests[static_cast<size_t>(r)], 1);
  add_relaxed(cm->buckets[latency_bucket(latency_ns)], 1);
  add_relaxed(cm->sum_ns, latency_ns);
}

}  // namespace rend
