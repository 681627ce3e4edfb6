#include "loadgen/model.h"

#include <xxhash.h>

#include <cmath>
#include <cstring>
#include <random>

namespace rend::loadgen {

uint64_t mix64(uint64_t a, uint64_t b) { return XXH3_64bits_withSeed(&a, sizeof a, b); }

size_t KeyFormat::min_length(uint64_t key_space) {
  size_t digits = 1;
  for (uint64_t largest = key_space == 0 ? 0 : key_space - 1; largest >= 10; largest /= 10) ++digits;
  return 1 + digits;
}

namespace {
// log1p(x) / x and expm1(x) / x, by their series near 0, where the quotients lose every digit:
// they make theta = 1 (where (x^(1-theta) - 1) / (1 - theta) becomes log x) no special case.
double log1p_over(double x) {
  return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}
double expm1_over(double x) {
  return std::abs(x) > 1e-8 ? std::expm1(x) / x : 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}
}  // namespace

KeyChooser::KeyChooser(uint64_t n, KeyDist dist, double theta) : n_(n == 0 ? 1 : n), dist_(dist) {
  if (dist_ != KeyDist::kZipf) return;
  theta_ = theta;
  h_integral_x1_ = h_integral(1.5) - 1.0;
  h_integral_n_ = h_integral(static_cast<double>(n_) + 0.5);
  s_ = 2.0 - h_integral_inverse(h_integral(2.5) - h(2.0));
}

double KeyChooser::h(double x) const { return std::exp(-theta_ * std::log(x)); }

double KeyChooser::h_integral(double x) const {
  const double log_x = std::log(x);
  return expm1_over((1.0 - theta_) * log_x) * log_x;
}

double KeyChooser::h_integral_inverse(double x) const {
  double t = x * (1.0 - theta_);
  if (t < -1.0) t = -1.0;  // rounding: the exact value is never below -1
  return std::exp(log1p_over(t) * x);
}

uint64_t KeyChooser::pick(Rng& rng) const {
  if (dist_ == KeyDist::kUniform) return rng.below(n_);
  // Ranks are 1..n here. u is uniform under the hat function (h's integral from 1.5 less the
  // first rank's excess, down to n + 0.5); its inverse x rounds to a rank k, kept when the area
  // under h at k covers u (the squeeze s_ accepts most without computing it).
  while (true) {
    const double u = h_integral_n_ + rng.unit() * (h_integral_x1_ - h_integral_n_);
    const double x = h_integral_inverse(u);
    double k = std::floor(x + 0.5);
    if (k < 1.0) {
      k = 1.0;
    } else if (k > static_cast<double>(n_)) {
      k = static_cast<double>(n_);
    }
    if (k - x <= s_ || u >= h_integral(k + 0.5) - h(k)) return static_cast<uint64_t>(k) - 1;
  }
}

ValueModel::ValueModel(uint64_t seed, size_t max_size)
    : seed_(mix64(seed, 0x76616c756573ULL)),
      nonce_(std::random_device{}() | (uint64_t{std::random_device{}()} << 32)),
      max_size_(max_size) {
  const size_t size = max_size + kOffsetRange;
  block_ = std::make_unique<char[]>(size);
  Rng rng(seed_);
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const uint64_t word = rng.next();
    std::memcpy(block_.get() + i, &word, 8);
  }
  for (; i < size; ++i) block_[i] = static_cast<char>(rng.next());
}

}  // namespace rend::loadgen
