// A log-linear latency histogram in the style of HdrHistogram, small enough to own outright.
//
// Values (nanoseconds) below 2^kSubBits are counted exactly; above, each power of two is split
// into 2^kSubBits equal buckets, so a reported percentile is within 1/2^kSubBits (0.8%) of the
// true value. Recording is an index computation and an increment: no allocation, no locking
// (one histogram per thread; merge() afterwards). The bucket array is allocated once, in the
// constructor. Values at or above 2^kMaxBits are clamped into the last bucket (max() stays exact).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rend::loadgen {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr int kMaxBits = 40;  // 2^40 ns is about 18 minutes
  static constexpr size_t kBuckets = size_t{kMaxBits - kSubBits + 1} << kSubBits;

  Histogram() : counts_(kBuckets, 0) {}

  void record(uint64_t value) {
    ++counts_[index_of(value)];
    ++count_;
    sum_ += value;
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }

  void merge(const Histogram& other);
  void clear();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_); }

  // The smallest recorded value v such that at least `percent`% of the values are <= v, reported
  // as the upper bound of v's bucket (never above max()). 0 when empty; percentile(100) == max().
  uint64_t percentile(double percent) const;

  static size_t index_of(uint64_t value) {
    if (value < (uint64_t{1} << kSubBits)) return static_cast<size_t>(value);
    if (value >= (uint64_t{1} << kMaxBits)) return kBuckets - 1;
    const int msb = 63 - __builtin_clzll(value);
    const int shift = msb - kSubBits;
    return (static_cast<size_t>(shift + 1) << kSubBits) +
           static_cast<size_t>((value >> shift) - (uint64_t{1} << kSubBits));
  }
  // The range of values that index_of() maps to `index`.
  static uint64_t lowest_in(size_t index);
  static uint64_t highest_in(size_t index);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace rend::loadgen
