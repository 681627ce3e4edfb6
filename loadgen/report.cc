// The text and JSON reports of a run.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "common/version.h"
#include "loadgen/loadgen.h"

namespace rend::loadgen {
namespace {

double us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

std::string value_sizes(size_t lo, size_t hi) {
  return lo == hi ? fmt::format("{} bytes", lo) : fmt::format("{}..{} bytes (uniform)", lo, hi);
}

std::string limit_text(const Options& o) {
  if (o.duration > 0 && o.ops > 0) return fmt::format("{} requests or {} s, whichever first", o.ops, o.duration);
  if (o.duration > 0) return fmt::format("{} s", o.duration);
  if (o.ops > 0) return fmt::format("{} requests", o.ops);
  return "the workload's end";
}

std::string_view dist_name(KeyDist d) { return d == KeyDist::kUniform ? "uniform" : "zipf"; }

std::string latency_line(const Histogram& h) {
  return fmt::format("p50 {:.1f}  p99 {:.1f}  p99.9 {:.1f}  max {:.1f}  mean {:.1f}", us(h.percentile(50)),
                     us(h.percentile(99)), us(h.percentile(99.9)), us(h.max()), h.mean() / 1000.0);
}

nlohmann::json latency_json(const Histogram& h) {
  return {{"p50", us(h.percentile(50))},     {"p90", us(h.percentile(90))}, {"p99", us(h.percentile(99))},
          {"p99_9", us(h.percentile(99.9))}, {"max", us(h.max())},          {"min", us(h.min())},
          {"mean", h.mean() / 1000.0}};
}

}  // namespace

void print_header(std::FILE* out, const RunReport& report) {
  const Options& o = report.options;
  fmt::print(out, "rend-loadgen {}\n", rend::kVersion);
  auto row = [&](std::string_view name, const std::string& value) { fmt::print(out, "  {:<13}{}\n", name, value); };
  row("workload", std::string(workload_name(o.workload)) +
                      (o.workload == WorkloadKind::kBench
                           ? " (fixed profile: 90% get / 10% set, 100-byte values, 10000 uniform keys, preloaded)"
                           : ""));
  row("target", report.target + (o.unix_path.empty() ? " (tcp)" : ""));
  row("protocol", std::string(protocol_name(o.protocol)));
  row("threads", std::to_string(o.threads));
  row("connections", std::to_string(o.connections));
  row("pipeline", std::to_string(o.pipeline));
  row("loop", o.rate > 0 ? fmt::format("open, {} requests/s in total (latency from intended send times)", o.rate)
                         : std::string("closed"));
  row("limit", limit_text(o));
  row("keys",
      fmt::format("{} bytes ('{}...'), key space {}, {}{}", o.key_length, report.key_prefix, o.key_space,
                  dist_name(o.key_dist), o.key_dist == KeyDist::kZipf ? fmt::format(" (theta {})", o.zipf_theta) : ""));
  row("values", value_sizes(o.value_min, o.value_max));
  row("get ratio", o.get_ratio ? fmt::format("{}", *o.get_ratio) : std::string("n/a"));
  row("multi-get", fmt::format("2..{} keys (blast)", o.multiget_max));
  row("sizes", fmt::format("0..{} step {}{}", o.size_max, o.size_step,
                           report.sizes > 0 ? fmt::format(" ({} sizes)", report.sizes) : std::string(" (sizes)")));
  row("preload", o.preload ? "yes (bench, mix)" : "no");
  row("seed", o.stream == 0 ? std::to_string(o.seed) : fmt::format("{} (stream {})", o.seed, o.stream));
  row("timeout", fmt::format("{} ms", o.timeout_ms));
  std::fflush(out);
}

void print_phase(std::FILE* out, const PhaseResult& phase) {
  const PhaseStats& s = phase.stats;
  fmt::print(out, "\n{}: {} requests in {:.3f} s = {:.0f} ops/s\n", phase.name, s.ops, phase.elapsed_s,
             phase.ops_per_s());
  fmt::print(out, "  latency us   {}\n", latency_line(s.latency));
  if (s.send_lag.count() > 0)
    fmt::print(out, "  send lag us  {}  (open loop: sent after the intended time)\n", latency_line(s.send_lag));
  for (size_t i = 0; i < kOpKinds; ++i) {
    const CommandStats& c = s.commands[i];
    if (c.ops == 0) continue;
    std::string hits;
    if (is_read(static_cast<OpKind>(i))) {
      hits = fmt::format("  hits {:.2f}%",
                         c.keys ? 100.0 * static_cast<double>(c.hits) / static_cast<double>(c.keys) : 0.0);
    }
    fmt::print(out, "  {:<9}{:>10} req{:<14}  {}\n", op_name(static_cast<OpKind>(i)), c.ops, hits,
               latency_line(c.latency));
  }
  std::string errors;
  for (size_t i = 0; i < kErrorKinds; ++i) {
    if (!errors.empty()) errors += ", ";
    errors += fmt::format("{} {}", error_name(static_cast<ErrorKind>(i)), s.errors[i]);
  }
  fmt::print(out, "  errors       {}{}\n",
             s.errors_total == 0 ? "none: " : fmt::format("{} ({}) ", s.errors_total, "FAILED"), errors);
  if (s.aborted > 0) fmt::print(out, "  aborted      {} requests in flight on failed connections\n", s.aborted);
  if (s.unjudged > 0) {
    fmt::print(out, "  unjudged     {} reads of keys whose last store failed (not checked)\n", s.unjudged);
  }
  if (s.unsent > 0) fmt::print(out, "  behind       {} requests due before the end were never sent\n", s.unsent);
  for (const auto& sample : s.samples) fmt::print(out, "    ! {}\n", sample);
  fmt::print(out, "  loadgen cpu  {:.3f} s (user {:.3f}, sys {:.3f}) = {:.2f} us/request, {:.0f}% of a core\n",
             phase.cpu.total(), phase.cpu.user_s, phase.cpu.system_s, phase.cpu_us_per_op(),
             phase.elapsed_s > 0 ? 100.0 * phase.cpu.total() / phase.elapsed_s : 0.0);
  std::fflush(out);
}

void print_summary(std::FILE* out, const RunReport& report) {
  if (!report.fatal.empty()) fmt::print(out, "\nerror: {}\n", report.fatal);
  const uint64_t errors = report.errors();
  fmt::print(out, "\nresult: {}  (process cpu {:.3f} s: user {:.3f}, sys {:.3f})\n",
             errors == 0 ? std::string("OK") : fmt::format("FAILED, {} errors", errors), report.cpu.total(),
             report.cpu.user_s, report.cpu.system_s);
}

std::string report_json(const RunReport& report) {
  const Options& o = report.options;
  nlohmann::json params = {
      {"workload", workload_name(o.workload)},
      {"target", report.target},
      {"protocol", protocol_name(o.protocol)},
      {"threads", o.threads},
      {"connections", o.connections},
      {"pipeline", o.pipeline},
      {"rate", o.rate},
      {"loop", o.rate > 0 ? "open" : "closed"},
      {"duration_s", o.duration},
      {"ops", o.ops},
      {"key_length", o.key_length},
      {"key_prefix", std::string(1, report.key_prefix)},
      {"key_space", o.key_space},
      {"key_dist", dist_name(o.key_dist)},
      {"zipf_theta", o.zipf_theta},
      {"value_min", o.value_min},
      {"value_max", o.value_max},
      {"get_ratio", o.get_ratio ? nlohmann::json(*o.get_ratio) : nlohmann::json(nullptr)},
      {"multiget_max", o.multiget_max},
      {"size_max", o.size_max},
      {"size_step", o.size_step},
      {"sizes", report.sizes},
      {"preload", o.preload},
      {"seed", o.seed},
      {"stream", o.stream},
      {"timeout_ms", o.timeout_ms},
  };
  nlohmann::json phases = nlohmann::json::array();
  for (const auto& phase : report.phases) {
    const PhaseStats& s = phase.stats;
    nlohmann::json commands = nlohmann::json::object();
    for (size_t i = 0; i < kOpKinds; ++i) {
      const CommandStats& c = s.commands[i];
      if (c.ops == 0) continue;
      nlohmann::json entry = {{"requests", c.ops}, {"latency_us", latency_json(c.latency)}};
      if (is_read(static_cast<OpKind>(i))) {
        entry["keys"] = c.keys;
        entry["hits"] = c.hits;
      }
      commands[std::string(op_name(static_cast<OpKind>(i)))] = entry;
    }
    nlohmann::json errors = {{"total", s.errors_total}};
    for (size_t i = 0; i < kErrorKinds; ++i)
      errors[std::string(error_json_key(static_cast<ErrorKind>(i)))] = s.errors[i];
    phases.push_back({
        {"name", phase.name},
        {"measured", phase.measured},
        {"requests", s.ops},
        {"elapsed_s", phase.elapsed_s},
        {"ops_per_s", phase.ops_per_s()},
        {"latency_us", latency_json(s.latency)},
        {"send_lag_us", latency_json(s.send_lag)},
        {"commands", commands},
        {"errors", errors},
        {"error_samples", s.samples},
        {"aborted", s.aborted},
        {"unsent", s.unsent},
        {"unjudged", s.unjudged},
        {"cpu",
         {{"user_s", phase.cpu.user_s}, {"system_s", phase.cpu.system_s}, {"us_per_request", phase.cpu_us_per_op()}}},
    });
  }
  nlohmann::json out = {
      {"tool", "rend-loadgen"},
      {"version", rend::kVersion},
      {"params", params},
      {"phases", phases},
      {"errors", report.errors()},
      {"ok", report.errors() == 0},
      {"cpu", {{"user_s", report.cpu.user_s}, {"system_s", report.cpu.system_s}}},
  };
  if (!report.fatal.empty()) out["fatal"] = report.fatal;
  return out.dump();
}

}  // namespace rend::loadgen
