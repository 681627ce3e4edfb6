// Unit tests for the loadgen's log-linear latency histogram: bucket arithmetic, percentiles
// within the promised relative error, merge and clear.
#include "loadgen/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace rend::loadgen {
namespace {

constexpr double kRelativeError = 1.0 / (1 << Histogram::kSubBits);

TEST(Histogram, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.percentile(99.9), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(Histogram, BucketsAreContiguousAndCoverTheirValues) {
  // Every index's range starts right after the previous one's, and index_of maps both ends back.
  for (size_t i = 1; i + 1 < Histogram::kBuckets; ++i) {
    ASSERT_EQ(Histogram::lowest_in(i), Histogram::highest_in(i - 1) + 1) << i;
    ASSERT_EQ(Histogram::index_of(Histogram::lowest_in(i)), i) << i;
    ASSERT_EQ(Histogram::index_of(Histogram::highest_in(i)), i) << i;
    const double width = static_cast<double>(Histogram::highest_in(i) - Histogram::lowest_in(i) + 1);
    if (i < (size_t{1} << Histogram::kSubBits)) {
      ASSERT_EQ(width, 1.0) << i;  // the exact range
      continue;
    }
    ASSERT_LE(width / static_cast<double>(Histogram::lowest_in(i)), kRelativeError + 1e-12) << i;
  }
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 0; v < 100; ++v) h.record(v);
  EXPECT_EQ(h.percentile(50), 49u);  // rank 50 of 0..99
  EXPECT_EQ(h.percentile(1), 0u);
  EXPECT_EQ(h.percentile(100), 99u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 99u);
}

TEST(Histogram, UniformPercentilesWithinRelativeError) {
  Histogram h;
  const uint64_t n = 1'000'000;
  for (uint64_t v = 1; v <= n; ++v) h.record(v * 1000);  // 1 us .. 1 s in ns
  for (double p : {50.0, 90.0, 99.0, 99.9, 99.99}) {
    const double exact = std::ceil(p / 100.0 * n) * 1000.0;
    const double got = static_cast<double>(h.percentile(p));
    EXPECT_GE(got, exact) << p;  // reported as the bucket's upper bound: never below
    EXPECT_LE(got, exact * (1 + kRelativeError)) << p;
  }
  EXPECT_EQ(h.percentile(100), n * 1000);
  EXPECT_EQ(h.max(), n * 1000);
  EXPECT_EQ(h.min(), 1000u);
  EXPECT_NEAR(h.mean(), (n + 1) / 2.0 * 1000.0, 1e-6 * n * 1000);
}

TEST(Histogram, MatchesSortedSamplesOnARandomLongTail) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(11.0, 1.5);  // ~60 us median, long tail
  std::vector<uint64_t> samples;
  Histogram h;
  for (int i = 0; i < 200'000; ++i) {
    const auto v = static_cast<uint64_t>(dist(rng));
    samples.push_back(v);
    h.record(v);
  }
  std::sort(samples.begin(), samples.end());
  for (double p : {50.0, 99.0, 99.9}) {
    const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(samples.size())));
    const double exact = static_cast<double>(samples[rank - 1]);
    const double got = static_cast<double>(h.percentile(p));
    EXPECT_GE(got, exact) << p;
    EXPECT_LE(got, exact * (1 + kRelativeError) + 1) << p;
  }
  EXPECT_EQ(h.max(), samples.back());
}

TEST(Histogram, SingleValueEveryPercentileIsThatValue) {
  Histogram h;
  for (int i = 0; i < 10; ++i) h.record(123'456);
  EXPECT_EQ(h.percentile(0), 123'456u);
  EXPECT_EQ(h.percentile(50), 123'456u);  // capped at max, not the bucket's upper bound
  EXPECT_EQ(h.percentile(99.9), 123'456u);
}

TEST(Histogram, HugeValuesAreClampedButMaxIsExact) {
  Histogram h;
  h.record(uint64_t{1} << 50);
  h.record(5);
  EXPECT_EQ(h.max(), uint64_t{1} << 50);
  EXPECT_EQ(h.percentile(100), uint64_t{1} << 50);
  EXPECT_EQ(h.percentile(50), 5u);
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  Histogram a, b, all;
  for (uint64_t v = 1; v <= 5000; ++v) {
    (v % 3 == 0 ? a : b).record(v * 37);
    all.record(v * 37);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  for (double p : {10.0, 50.0, 99.0, 99.9, 100.0}) EXPECT_EQ(a.percentile(p), all.percentile(p)) << p;
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
}

TEST(Histogram, ClearForgetsEverything) {
  Histogram h;
  h.record(10);
  h.record(1'000'000);
  h.clear();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(99), 0u);
  h.record(42);
  EXPECT_EQ(h.min(), 42u);
  EXPECT_EQ(h.max(), 42u);
}

}  // namespace
}  // namespace rend::loadgen
