// The data model of rend-loadgen: keys, key distributions and values, all deterministic.
//
// A key is named by its index (0 .. key_space-1) and spelled with a fixed length. A value is named
// by (key, version, size) and is a slice of one random block generated at start-up, at an offset
// derived from the key and version: a reader can regenerate, and so check byte for byte, any
// value ever written without having stored it. Flags are derived from the key alone, so every
// workload writes the same flags for a key (append and incr keep them) and any read can check them.
//
// Everything here is immutable after construction and shared read-only by the worker threads,
// except Rng, which each connection owns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace rend::loadgen {

// splitmix64: a tiny, fast, well-mixed generator; one per connection, seeded from --seed and the
// connection's index, so a run is reproducible.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (Lemire's multiply-shift; the bias is below 2^-64 * n).
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }
  // Uniform in [lo, hi].
  uint64_t between(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

uint64_t mix64(uint64_t a, uint64_t b);  // a keyed hash of two words (xxh3)

// Keys are a prefix letter followed by the zero-padded decimal index: "k000000000000042" for
// length 16. Workloads whose values others cannot check use their own letter, so that they never
// leave such values under the keys of the workloads that check what they read (fill/bench/mix).
class KeyFormat {
 public:
  explicit KeyFormat(size_t length, char prefix = 'k') : length_(length), prefix_(prefix) {}
  char prefix() const { return prefix_; }
  size_t length() const { return length_; }
  // The shortest length that can spell every index below key_space.
  static size_t min_length(uint64_t key_space);
  // Writes exactly length() bytes.
  void write(uint64_t index, char* out) const {
    out[0] = prefix_;
    for (size_t i = length_ - 1; i >= 1; --i) {
      out[i] = static_cast<char>('0' + index % 10);
      index /= 10;
    }
  }

 private:
  size_t length_;
  char prefix_;
};

enum class KeyDist : uint8_t { kUniform, kZipf };

// Picks key indices in [0, n): uniform, or Zipfian with exponent theta in (0, 2] (theta = 1
// included): index i is drawn with probability (i + 1)^-theta / H(n, theta), index 0 the hottest
// key. Zipf uses rejection-inversion sampling (Hörmann and Derflinger, "Rejection-inversion to
// generate variates from monotone discrete distributions", 1996): exact for every theta, O(1)
// to construct and to pick (1.00-1.02 uniform draws per pick for theta 0.1-2 over 100000 keys),
// and a function of the Rng alone, so a seed gives the same keys on every run.
class KeyChooser {
 public:
  KeyChooser(uint64_t n, KeyDist dist, double theta);
  uint64_t pick(Rng& rng) const;
  uint64_t size() const { return n_; }

 private:
  double h(double x) const;                   // x^-theta
  double h_integral(double x) const;          // an antiderivative of h: (x^(1-theta) - 1) / (1 - theta)
  double h_integral_inverse(double x) const;  // its inverse

  uint64_t n_;
  KeyDist dist_;
  double theta_ = 0;
  double h_integral_x1_ = 0;  // h_integral(1.5) - h(1): the end of u's range at rank 1
  double h_integral_n_ = 0;   // h_integral(n + 0.5): its end at rank n
  double s_ = 0;              // accept at once when k - x <= s_ (the squeeze)
};

class ValueModel {
 public:
  // Offsets are drawn from [0, kOffsetRange), so two versions of a key share a value only with
  // probability 2^-20 (and then only if their sizes match too).
  static constexpr size_t kOffsetRange = size_t{1} << 20;

  // `max_size` is the largest value any workload of the run will ask for.
  ValueModel(uint64_t seed, size_t max_size);

  size_t max_size() const { return max_size_; }
  // Different in every run (not derived from the seed): see make_setget.
  uint64_t nonce() const { return nonce_; }
  std::string_view value(uint64_t key, uint64_t version, size_t size) const {
    return {block_.get() + offset(key, version), size};
  }
  uint64_t offset(uint64_t key, uint64_t version) const { return mix64(key ^ seed_, version) % kOffsetRange; }
  // The flags every store of `key` uses (independent of the seed, so runs with different seeds
  // agree about keys an earlier run left behind).
  static uint32_t flags(uint64_t key) { return static_cast<uint32_t>(mix64(key, 0x666c616773ULL) >> 17); }

 private:
  uint64_t seed_;
  uint64_t nonce_;
  size_t max_size_;
  std::unique_ptr<char[]> block_;
};

}  // namespace rend::loadgen
