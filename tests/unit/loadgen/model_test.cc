// Unit tests for the loadgen's data model (keys, key choice, deterministic values) and for the
// option rules that depend on it (the sizes schedule, validation).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "loadgen/model.h"
#include "loadgen/options.h"

namespace rend::loadgen {
namespace {

TEST(KeyFormat, FixedLengthZeroPadded) {
  KeyFormat f(8);
  std::string k(8, '?');
  f.write(42, k.data());
  EXPECT_EQ(k, "k0000042");
  f.write(9999999, k.data());
  EXPECT_EQ(k, "k9999999");
  EXPECT_EQ(KeyFormat::min_length(1), 2u);
  EXPECT_EQ(KeyFormat::min_length(10), 2u);
  EXPECT_EQ(KeyFormat::min_length(11), 3u);
  EXPECT_EQ(KeyFormat::min_length(10000), 5u);
}

TEST(KeyChooser, UniformStaysInRangeAndCoversIt) {
  KeyChooser c(100, KeyDist::kUniform, 0.99);
  Rng rng(1);
  std::set<uint64_t> seen;
  for (int i = 0; i < 10000; ++i) {
    const uint64_t k = c.pick(rng);
    ASSERT_LT(k, 100u);
    seen.insert(k);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(KeyChooser, ZipfIsSkewedTowardsLowIndices) {
  const uint64_t n = 10000;
  KeyChooser c(n, KeyDist::kZipf, 0.99);
  Rng rng(2);
  std::vector<uint64_t> counts(n);
  const int draws = 200000;
  for (int i = 0; i < draws; ++i) {
    const uint64_t k = c.pick(rng);
    ASSERT_LT(k, n);
    ++counts[k];
  }
  // With theta 0.99 over 10000 keys the hottest key gets ~10% and the top 1% of keys over half.
  EXPECT_GT(counts[0], draws / 20);
  uint64_t top = 0;
  for (uint64_t i = 0; i < n / 100; ++i) top += counts[i];
  EXPECT_GT(top, static_cast<uint64_t>(draws) / 2);
  EXPECT_GT(counts[0], counts[10]);
}

// The draws of the top keys against their analytic probabilities (i + 1)^-theta / H(n, theta),
// across theta = 1, where the sampler's formulas change form, and up to 2.
TEST(KeyChooser, ZipfTopKeysMatchTheAnalyticFrequencies) {
  const uint64_t n = 100000;
  const int draws = 400000;
  for (const double theta : {0.5, 0.9, 0.99, 1.0, 1.01, 1.1, 1.5, 2.0}) {
    double harmonic = 0;
    for (uint64_t i = 1; i <= n; ++i) harmonic += std::pow(static_cast<double>(i), -theta);
    KeyChooser c(n, KeyDist::kZipf, theta);
    Rng rng(3);
    std::vector<uint64_t> counts(n);
    for (int i = 0; i < draws; ++i) {
      const uint64_t k = c.pick(rng);
      ASSERT_LT(k, n);
      ++counts[k];
    }
    double top100 = 0;
    for (uint64_t i = 0; i < 100; ++i) top100 += std::pow(static_cast<double>(i + 1), -theta) / harmonic;
    uint64_t top100_drawn = 0;
    for (uint64_t i = 0; i < 100; ++i) top100_drawn += counts[i];
    for (uint64_t i = 0; i < 3; ++i) {
      const double p = std::pow(static_cast<double>(i + 1), -theta) / harmonic;
      const double sigma = std::sqrt(p * (1 - p) / draws);
      // 5 standard deviations: a fair sampler fails this about once in 3 million runs.
      EXPECT_NEAR(static_cast<double>(counts[i]) / draws, p, 5 * sigma) << "theta " << theta << " key " << i;
    }
    const double sigma = std::sqrt(top100 * (1 - top100) / draws);
    EXPECT_NEAR(static_cast<double>(top100_drawn) / draws, top100, 5 * sigma) << "theta " << theta << " top 100";
  }
}

TEST(KeyChooser, ZipfIsTheSameForTheSameSeed) {
  KeyChooser c(1000000, KeyDist::kZipf, 1.0);
  Rng a(9), b(9), other(10);
  int differs = 0;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t k = c.pick(a);
    EXPECT_EQ(k, c.pick(b));
    differs += k != c.pick(other) ? 1 : 0;
  }
  EXPECT_GT(differs, 100);
}

TEST(KeyChooser, ZipfOfOneKeyAlwaysPicksIt) {
  for (const double theta : {0.9, 1.0, 2.0}) {
    KeyChooser c(1, KeyDist::kZipf, theta);
    Rng rng(4);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(c.pick(rng), 0u);
  }
}

TEST(ValueModel, DeterministicPerSeedKeyAndVersion) {
  ValueModel a(7, 4096), b(7, 4096), c(8, 4096);
  EXPECT_EQ(a.value(1, 0, 100), b.value(1, 0, 100));
  EXPECT_NE(a.value(1, 0, 100), c.value(1, 0, 100));
  EXPECT_NE(a.value(1, 0, 100), a.value(1, 1, 100));
  EXPECT_NE(a.value(1, 0, 100), a.value(2, 0, 100));
  // A shorter value of the same key and version is a prefix of the longer one.
  EXPECT_EQ(a.value(5, 3, 4096).substr(0, 10), a.value(5, 3, 10));
  EXPECT_EQ(a.value(5, 3, 0).size(), 0u);
  EXPECT_EQ(ValueModel::flags(5), ValueModel::flags(5));
  EXPECT_NE(ValueModel::flags(5), ValueModel::flags(6));
}

TEST(SizeSchedule, EdgesAroundEveryStep) {
  EXPECT_EQ(size_schedule(10, 4), (std::vector<size_t>{0, 1, 2, 3, 4, 5, 7, 8, 9, 10}));
  const auto sizes = size_schedule(kDefaultSizeMax, 1024);
  EXPECT_EQ(sizes.front(), 0u);
  EXPECT_EQ(sizes.back(), kDefaultSizeMax);
  for (size_t s : {size_t{1}, size_t{2}, size_t{1023}, size_t{1024}, size_t{1025}, size_t{2047}, size_t{2048},
                   size_t{2049}, kDefaultSizeMax - 1}) {
    EXPECT_TRUE(std::binary_search(sizes.begin(), sizes.end(), s)) << s;
  }
  EXPECT_TRUE(std::is_sorted(sizes.begin(), sizes.end()));
}

TEST(Options, Validation) {
  Options o;
  EXPECT_EQ(validate(o.effective()), "");
  o.key_length = 4;  // cannot spell 10000 keys
  EXPECT_NE(validate(o), "");
  for (const double theta : {0.0, -1.0, 2.01}) {
    o = Options{};
    o.zipf_theta = theta;
    EXPECT_NE(validate(o), "") << theta;
  }
  for (const double theta : {0.01, 0.9, 1.0, 1.1, 2.0}) {
    o = Options{};
    o.zipf_theta = theta;
    EXPECT_EQ(validate(o), "") << theta;
  }
  o = Options{};
  o.value_min = 10;
  o.value_max = 5;
  EXPECT_NE(validate(o), "");
  o = Options{};
  o.pipeline = 0;
  EXPECT_NE(validate(o), "");
}

TEST(Options, BenchIsAFixedProfile) {
  Options o;
  o.workload = WorkloadKind::kBench;
  o.value_min = o.value_max = 5000;
  o.key_space = 5;
  o.get_ratio = 0.1;
  const Options e = o.effective();
  EXPECT_EQ(e.value_min, 100u);
  EXPECT_EQ(e.value_max, 100u);
  EXPECT_EQ(e.key_space, 10000u);
  EXPECT_DOUBLE_EQ(*e.get_ratio, 0.9);
  EXPECT_EQ(e.duration, 10);  // neither --ops nor --duration: ten seconds
}

}  // namespace
}  // namespace rend::loadgen
