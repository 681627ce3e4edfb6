// latency_bucket's table lookup must agree with the definition: the number of bounds the latency
// exceeds in whole microseconds.
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

}  // namespace
}  // namespace rend
