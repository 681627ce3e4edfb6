// latency_bucket's table lookup must agree with the definition (the number of bounds the latency
// exceeds in whole microseconds), and MetricClockBatch shares one clock reading per batch.
#include "common/request_metrics.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace rend {
namespace {

size_t bucket_by_scan(uint64_t ns) {
  const uint64_t us = ns / 1000;
  size_t i = 0;
  while (i < kLatencyBoundsUs.size() && us > kLatencyBoundsUs[i]) ++i;
  return i;
}

TEST(LatencyBucket, MatchesTheBoundsAroundEveryEdge) {
  for (const uint32_t bound : kLatencyBoundsUs) {
    const uint64_t edge = uint64_t{bound} * 1000 + 999;  // the largest latency still in this bucket
    for (uint64_t ns = edge - 2000; ns <= edge + 2000; ++ns) {
      ASSERT_EQ(latency_bucket(ns), bucket_by_scan(ns)) << ns << " ns";
    }
  }
}

TEST(LatencyBucket, MatchesEveryPowerOfTwoAndItsNeighbours) {
  for (int shift = 0; shift < 64; ++shift) {
    const uint64_t p = uint64_t{1} << shift;
    for (const uint64_t ns : {p - 1, p, p + 1}) ASSERT_EQ(latency_bucket(ns), bucket_by_scan(ns)) << ns << " ns";
  }
  EXPECT_EQ(latency_bucket(0), 0u);
  EXPECT_EQ(latency_bucket(std::numeric_limits<uint64_t>::max()), kLatencyBuckets - 1);
}

TEST(LatencyBucket, MatchesASweepUpToTenSeconds) {
  for (uint64_t ns = 0; ns < 10'000'000'000ull; ns = ns + 1 + ns / 4096) {
    ASSERT_EQ(latency_bucket(ns), bucket_by_scan(ns)) << ns << " ns";
  }
}

// Waits until the monotonic clock has visibly moved on (its resolution is well below 1 ms).
void let_time_pass() {
  const uint64_t start = monotonic_ns();
  while (monotonic_ns() - start < 1000) {
  }
}

TEST(MetricClockBatch, OutsideABatchEveryReadingIsFresh) {
  const uint64_t a = metric_clock_ns();
  let_time_pass();
  EXPECT_GT(metric_clock_ns(), a);
}

TEST(MetricClockBatch, ReadingsInOneBatchAreTheFirstOne) {
  const uint64_t before = monotonic_ns();
  const MetricClockBatch batch;
  let_time_pass();
  const uint64_t first = metric_clock_ns();
  EXPECT_GT(first, before);  // taken at the first reading, not when the batch began
  let_time_pass();
  EXPECT_EQ(metric_clock_ns(), first);
  EXPECT_EQ(metric_clock_since(first), 0u);
}

TEST(MetricClockBatch, NestedBatchesReadTheirOwnAndRestoreTheOuter) {
  const MetricClockBatch outer;
  const uint64_t outer_reading = metric_clock_ns();
  uint64_t inner_reading = 0;
  {
    const MetricClockBatch inner;
    let_time_pass();
    inner_reading = metric_clock_ns();
    EXPECT_GT(inner_reading, outer_reading);
    EXPECT_EQ(metric_clock_ns(), inner_reading);
  }
  EXPECT_EQ(metric_clock_ns(), outer_reading);
  // A start taken in the inner batch is later than the outer reading: no wrap-around.
  EXPECT_EQ(metric_clock_since(inner_reading), 0u);
}

TEST(MetricClockBatch, AfterTheBatchReadingsAreFreshAgain) {
  uint64_t in_batch = 0;
  {
    const MetricClockBatch batch;
    in_batch = metric_clock_ns();
  }
  let_time_pass();
  EXPECT_GT(metric_clock_ns(), in_batch);
  EXPECT_GT(metric_clock_since(in_batch), 0u);
}

TEST(MetricClockBatch, BeginAndEndMakeABatchThatIsNotAScope) {
  MetricClockBatch::begin();  // as the worker's loop does before it polls
  let_time_pass();
  const uint64_t first = metric_clock_ns();
  let_time_pass();
  EXPECT_EQ(metric_clock_ns(), first);
  MetricClockBatch::end();  // its check phase
  let_time_pass();
  EXPECT_GT(metric_clock_ns(), first);
  EXPECT_GT(metric_clock_since(first), 0u);
}

}  // namespace
}  // namespace rend
