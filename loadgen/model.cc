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
double zeta(uint64_t n, double theta) {
  double sum = 0;
  for (uint64_t i = 1; i <= n; ++i) sum += 1.0 / std::pow(static_cast<double>(i), theta);
  return sum;
}
}  // namespace

KeyChooser::KeyChooser(uint64_t n, KeyDist dist, double theta) : n_(n == 0 ? 1 : n), dist_(dist) {
  if (dist_ != KeyDist::kZipf) return;
  theta_ = theta;
  alpha_ = 1.0 / (1.0 - theta_);
  zetan_ = zeta(n_, theta_);
  const double zeta2 = zeta(2, theta_);
  eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n_), 1.0 - theta_)) / (1.0 - zeta2 / zetan_);
  half_pow_theta_ = 1.0 + std::pow(0.5, theta_);
}

uint64_t KeyChooser::pick(Rng& rng) const {
  if (dist_ == KeyDist::kUniform) return rng.below(n_);
  const double u = rng.unit();
  const double uz = u * zetan_;
  if (uz < 1.0) return 0;
  if (uz < half_pow_theta_) return n_ > 1 ? 1 : 0;
  const auto v = static_cast<uint64_t>(static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1.0, alpha_));
  return v < n_ ? v : n_ - 1;
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
