#include "loadgen/options.h"

#include <unistd.h>

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <map>

#include "loadgen/workload.h"

namespace rend::loadgen {

std::string_view workload_name(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::kBlast: return "blast";
    case WorkloadKind::kSetGet: return "setget";
    case WorkloadKind::kSizes: return "sizes";
    case WorkloadKind::kFill: return "fill";
    case WorkloadKind::kSetOps: return "setops";
    case WorkloadKind::kBench: return "bench";
    case WorkloadKind::kMix: return "mix";
  }
  return "?";
}

std::string_view protocol_name(WireProtocol protocol) {
  switch (protocol) {
    case WireProtocol::kText: return "text";
    case WireProtocol::kBinary: return "binary";
    case WireProtocol::kMeta: return "meta";
  }
  return "?";
}

namespace {

bool parse_size(std::string_view s, size_t& out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// "N" or "MIN:MAX".
bool parse_size_range(const std::string& text, size_t& lo, size_t& hi) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos) {
    if (!parse_size(text, lo)) return false;
    hi = lo;
    return true;
  }
  return parse_size(std::string_view(text).substr(0, colon), lo) &&
         parse_size(std::string_view(text).substr(colon + 1), hi);
}

}  // namespace

std::vector<size_t> size_schedule(size_t max, size_t step) {
  std::vector<size_t> sizes;
  auto add = [&](size_t s) {
    if (s <= max) sizes.push_back(s);
  };
  add(0);
  add(1);
  add(2);
  for (size_t base = step; base <= max + 1 && step > 0; base += step) {
    add(base - 1);
    add(base);
    add(base + 1);
  }
  if (max > 0) add(max - 1);
  add(max);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

Options Options::effective() const {
  Options o = *this;
  switch (o.workload) {
    case WorkloadKind::kBench:
      // The fixed profile: comparable from run to run, whatever else is on the command line, and
      // the load `make bench` gives memcaslap (32-byte keys, 100-byte values, 90% get).
      o.get_ratio = 0.9;
      o.key_length = 32;
      o.value_min = o.value_max = 100;
      o.key_space = 10000;
      o.key_dist = KeyDist::kUniform;
      o.preload = true;
      break;
    case WorkloadKind::kMix:
      if (!o.get_ratio) o.get_ratio = 0.9;
      break;
    case WorkloadKind::kBlast:
      // Every command equally often unless told otherwise: 3 of the 12 kinds are reads.
      if (!o.get_ratio) o.get_ratio = 0.25;
      break;
    default: break;
  }
  const bool open_ended =
      o.workload == WorkloadKind::kBlast || o.workload == WorkloadKind::kBench || o.workload == WorkloadKind::kMix;
  if (open_ended && o.duration <= 0 && o.ops == 0) o.duration = 10;
  if (o.threads > o.connections) o.threads = o.connections;
  if (!o.progress) o.progress = !o.json && isatty(STDOUT_FILENO) == 1;
  return o;
}

std::string validate(const Options& o) {
  if (o.threads < 1 || o.threads > 256) return "--threads must be 1..256";
  if (o.connections < 1 || o.connections > 100000) return "--connections must be 1..100000";
  if (o.pipeline < 1 || o.pipeline > 4096) return "--pipeline must be 1..4096";
  if (o.rate < 0) return "--rate must be >= 0";
  if (o.duration < 0) return "--duration must be >= 0";
  if (o.key_space < 1) return "--key-space must be >= 1";
  if (o.key_length < 2 || o.key_length > proto::kMaxKeyLength) return "--key-length must be 2..250";
  uint64_t keys_needed = o.key_space;
  if (o.workload == WorkloadKind::kSizes) keys_needed = size_schedule(o.size_max, o.size_step).size();
  if (o.key_length < KeyFormat::min_length(keys_needed)) {
    return "--key-length " + std::to_string(o.key_length) + " cannot spell " + std::to_string(keys_needed) +
           " distinct keys (need at least " + std::to_string(KeyFormat::min_length(keys_needed)) + ")";
  }
  if (o.value_min > o.value_max) return "--value-size: min is above max";
  if (o.value_max > kMaxValueSize) return "--value-size: at most " + std::to_string(kMaxValueSize);
  if (o.size_max > kMaxValueSize) return "--size-max: at most " + std::to_string(kMaxValueSize);
  if (o.size_step < 1) return "--size-step must be >= 1";
  if (!(o.zipf_theta > 0 && o.zipf_theta <= 2)) return "--zipf-theta must be in (0, 2]";
  if (o.get_ratio && (*o.get_ratio < 0 || *o.get_ratio > 1)) return "--get-ratio must be in [0, 1]";
  if (o.multiget_max < 2 || o.multiget_max > kMaxMultiGet) {
    return "--multiget-max must be 2.." + std::to_string(kMaxMultiGet);
  }
  if (o.timeout_ms < 1) return "--timeout must be >= 1 ms";
  return {};
}

namespace {

const std::map<std::string, WorkloadKind> workloads = {
    {"blast", WorkloadKind::kBlast}, {"setget", WorkloadKind::kSetGet}, {"sizes", WorkloadKind::kSizes},
    {"fill", WorkloadKind::kFill},   {"setops", WorkloadKind::kSetOps}, {"bench", WorkloadKind::kBench},
    {"mix", WorkloadKind::kMix}};
const std::map<std::string, WireProtocol> protocols = {
    {"text", WireProtocol::kText}, {"binary", WireProtocol::kBinary}, {"meta", WireProtocol::kMeta}};
const std::map<std::string, KeyDist> dists = {{"uniform", KeyDist::kUniform}, {"zipf", KeyDist::kZipf}};

// What the command line gives before it becomes Options (names, flags that pair up).
struct CliInputs {
  std::string workload = "bench", protocol = "text", key_dist = "uniform";
  std::string value_size = "100";
  double ratio = -1;
  bool no_preload = false;
  bool progress = false, no_progress = false;
};

void declare_options(CLI::App& app, Options& o, CliInputs& in) {
  app.add_option("-w,--workload", in.workload,
                 "blast: every command at random, replies checked | setget: set then get, every byte "
                 "verified | sizes: every value size 0..--size-max | fill: write --key-space keys | "
                 "setops: set/add/replace/append/prepend with exact expected results | bench: fixed "
                 "profile (90% get / 10% set, 32-byte keys, 100-byte values, 10000 uniform keys, "
                 "preloaded) | mix: bench with your --get-ratio/--key-*/--value-size")
      ->check(CLI::IsMember(workloads));
  app.add_option("--host", o.host, "server host");
  app.add_option("-p,--port", o.port, "server TCP port");
  app.add_option("--unix", o.unix_path, "connect to this unix socket instead of --host/--port");
  app.add_option("--protocol", in.protocol,
                 "text | binary | meta: memcached 1.6's meta commands (mg for get/gat/touch, one quiet mg "
                 "per key and an mn for a multi-get, ms, md, ma)")
      ->check(CLI::IsMember(protocols));
  app.add_option("-t,--threads", o.threads, "event-loop threads");
  app.add_option("-c,--connections", o.connections, "connections in total, spread over the threads");
  app.add_option("--pipeline", o.pipeline, "requests in flight per connection");
  app.add_option("--rate", o.rate, "open loop: total requests per second (0 = closed loop)");
  app.add_option("--key-length", o.key_length, "bytes per key");
  app.add_option("--key-space", o.key_space, "distinct keys");
  app.add_option("--key-dist", in.key_dist, "uniform|zipf")->check(CLI::IsMember(dists));
  app.add_option("--zipf-theta", o.zipf_theta, "zipf exponent, 0 < theta <= 2 (1 included)");
  app.add_option("--value-size", in.value_size, "value bytes: N or MIN:MAX (uniform)");
  app.add_option("--get-ratio", in.ratio,
                 "share of reads (blast: get/multi-get/gat; mix: get); default 0.25 "
                 "for blast (uniform over commands), 0.9 otherwise")
      ->default_str("auto");
  app.add_option("-d,--duration", o.duration, "seconds to run (0 = until --ops or the workload's end)");
  app.add_option("-n,--ops", o.ops, "requests to send in total (0 = until --duration or the workload's end)");
  app.add_option("--seed", o.seed, "seed of every random choice and of the value data");
  app.add_option("--stream", o.stream,
                 "another sequence of random choices (keys, commands, sizes) over the same --seed's "
                 "values: runs reading one filled key space with different streams ask for different keys");
  app.add_flag("--json", o.json, "print one JSON object instead of the text report");
  app.add_option("--size-max", o.size_max, "sizes: the largest value size");
  app.add_option("--size-step", o.size_step, "sizes: step between sizes (each step also tests step-1 and step+1)");
  app.add_option("--timeout", o.timeout_ms, "ms before an unanswered request is a timeout");
  app.add_option("--multiget-max", o.multiget_max, "blast: most keys in one multi-get");
  app.add_flag("--no-preload", in.no_preload, "bench/mix: do not fill the key space first");
  app.add_flag("--progress", in.progress, "print a progress line every second (default: if stdout is a terminal)");
  app.add_flag("--no-progress", in.no_progress, "never print the progress line");
}

// Turns the parsed inputs into `o`; 2 (after saying why on stderr) when they do not make sense.
int apply_inputs(const CLI::App& app, const CliInputs& in, Options& o) {
  o.workload = workloads.at(in.workload);
  o.protocol = protocols.at(in.protocol);
  o.key_dist = dists.at(in.key_dist);
  if (!parse_size_range(in.value_size, o.value_min, o.value_max)) {
    fmt::print(stderr, "--value-size: expected N or MIN:MAX, got '{}'\n", in.value_size);
    return 2;
  }
  if (in.ratio >= 0 || app.count("--get-ratio") > 0) o.get_ratio = in.ratio;
  if (in.no_preload) o.preload = false;
  if (in.progress) o.progress = true;
  if (in.no_progress) o.progress = false;
  std::string problem = validate(o);
  if (problem.empty()) problem = validate(o.effective());
  if (!problem.empty()) {
    fmt::print(stderr, "rend-loadgen: {}\n", problem);
    return 2;
  }
  return -1;
}

}  // namespace

int parse_options(int argc, char** argv, Options& o) {
  CLI::App app{
      "rend-loadgen: load and correctness client for memcached-protocol servers (rend, memcached).\n"
      "Closed loop by default (each connection keeps --pipeline requests in flight); --rate makes it\n"
      "an open loop whose latency is measured from each request's intended send time.",
      "rend-loadgen"};
  app.option_defaults()->always_capture_default();

  CliInputs in;
  declare_options(app, o, in);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return apply_inputs(app, in, o);
}

}  // namespace rend::loadgen
