// rend-loadgen's command line: every option, its default and its validation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol/request.h"
#include "loadgen/model.h"

namespace rend::loadgen {

enum class WorkloadKind : uint8_t { kBlast, kSetGet, kSizes, kFill, kSetOps, kBench, kMix };

std::string_view workload_name(WorkloadKind kind);

// What goes on the wire: memcached's classic text commands, its binary protocol, or memcached
// 1.6's meta commands (mg ms md ma mn; text syntax, meta replies).
enum class WireProtocol : uint8_t { kText, kBinary, kMeta };

std::string_view protocol_name(WireProtocol protocol);  // "text", "binary", "meta"

// memcached's default item limit is 1 MiB including its item header, key and CAS; this much
// headroom lets any key up to 250 bytes through.
inline constexpr size_t kDefaultSizeMax = 1048576 - 512;

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 11211;
  std::string unix_path;  // non-empty: connect to this unix socket instead of host:port
  WireProtocol protocol = WireProtocol::kText;
  unsigned threads = 1;
  unsigned connections = 8;
  unsigned pipeline = 1;
  double rate = 0;  // total ops/s; 0 = closed loop
  unsigned key_length = 16;
  uint64_t key_space = 10000;
  KeyDist key_dist = KeyDist::kUniform;
  double zipf_theta = 0.99;
  size_t value_min = 100;
  size_t value_max = 100;
  std::optional<double> get_ratio;  // blast: share of reads; mix: share of gets
  double duration = 0;              // seconds; 0 = not bounded by time
  uint64_t ops = 0;                 // total requests; 0 = not bounded by count
  uint64_t seed = 1;
  uint64_t stream = 0;  // which sequence of choices a run draws over the seed's data
  bool json = false;
  WorkloadKind workload = WorkloadKind::kBench;
  size_t size_max = kDefaultSizeMax;  // sizes
  size_t size_step = 1024;            // sizes
  unsigned timeout_ms = 5000;
  unsigned multiget_max = 10;    // blast: keys per multi-get, 2..this
  bool preload = true;           // bench, mix: fill the key space before measuring
  std::optional<bool> progress;  // default: when stdout is a terminal (and not --json)

  // What the workload actually uses once its fixed profile is applied (bench) and defaults are
  // resolved; run() works from this.
  Options effective() const;
};

// Parses argv into `out`. Returns -1 to go on, or the exit code to leave with (0 after --help,
// non-zero on a usage error, which has been printed).
int parse_options(int argc, char** argv, Options& out);

// Semantic checks after parsing (also used by tests); returns an empty string when valid.
std::string validate(const Options& options);

// The value sizes the sizes workload visits: 0, 1, 2, then step-1, step, step+1, 2*step-1, ...
// up to max, and max-1, max; ascending, no duplicates.
std::vector<size_t> size_schedule(size_t max, size_t step);

}  // namespace rend::loadgen
