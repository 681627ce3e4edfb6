#include "loadgen/histogram.h"

#include <algorithm>
#include <cmath>

namespace rend::loadgen {

void Histogram::merge(const Histogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  sum_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
}

uint64_t Histogram::lowest_in(size_t index) {
  if (index < (size_t{1} << kSubBits)) return index;
  const size_t block = index >> kSubBits;  // >= 1
  const uint64_t sub = index & ((size_t{1} << kSubBits) - 1);
  const int shift = static_cast<int>(block) - 1;
  return ((uint64_t{1} << kSubBits) + sub) << shift;
}

uint64_t Histogram::highest_in(size_t index) {
  if (index < (size_t{1} << kSubBits)) return index;
  if (index == kBuckets - 1) return UINT64_MAX;  // the clamp bucket
  const int shift = static_cast<int>(index >> kSubBits) - 1;
  return lowest_in(index) + (uint64_t{1} << shift) - 1;
}

uint64_t Histogram::percentile(double percent) const {
  if (count_ == 0) return 0;
  percent = std::clamp(percent, 0.0, 100.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highest_in(i), max_);
  }
  return max_;
}

}  // namespace rend::loadgen
