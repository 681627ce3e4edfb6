#include "loadgen/loadgen.h"

#include <sys/resource.h>

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "loadgen/engine.h"
#include "loadgen/model.h"
#include "loadgen/workload.h"

namespace rend::loadgen {

CpuTime process_cpu() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  CpuTime t;
  t.user_s = static_cast<double>(usage.ru_utime.tv_sec) + static_cast<double>(usage.ru_utime.tv_usec) * 1e-6;
  t.system_s = static_cast<double>(usage.ru_stime.tv_sec) + static_cast<double>(usage.ru_stime.tv_usec) * 1e-6;
  return t;
}

uint64_t RunReport::errors() const {
  uint64_t total = 0;
  for (const auto& phase : phases) total += phase.stats.errors_total;
  return total + (fatal.empty() ? 0 : 1);
}

namespace {

// fill, bench and mix share keys (and check each other's values); the others write values no
// other workload could check, so each has keys of its own.
char key_prefix(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::kBlast: return 'b';
    case WorkloadKind::kSetGet: return 's';
    case WorkloadKind::kSetOps: return 'o';
    case WorkloadKind::kSizes: return 'z';
    default: return 'k';
  }
}

struct PhaseDef {
  std::string name;
  std::unique_ptr<Workload> workload;
  bool measured = true;
};

// Runs fn(worker) on one thread per worker and waits; while waiting, calls tick() once a second.
template <typename Fn, typename Tick>
void on_all_workers(std::vector<std::unique_ptr<Worker>>& workers, Fn fn, Tick tick) {
  std::mutex mutex;
  std::condition_variable done_cv;
  size_t done = 0;
  std::vector<std::thread> threads;
  threads.reserve(workers.size());
  for (auto& w : workers) {
    threads.emplace_back([&, worker = w.get()] {
      fn(*worker);
      std::lock_guard lock(mutex);
      ++done;
      done_cv.notify_one();
    });
  }
  {
    std::unique_lock lock(mutex);
    while (!done_cv.wait_for(lock, std::chrono::seconds(1), [&] { return done == workers.size(); })) {
      lock.unlock();
      tick();
      lock.lock();
    }
  }
  for (auto& t : threads) t.join();
}

}  // namespace

namespace {

// The phases a workload runs: an optional unmeasured preload, then the measured one.
std::vector<PhaseDef> plan_phases(const Options& o, const ValueModel& values, const KeyChooser& chooser,
                                  const std::vector<size_t>& sizes) {
  const bool cycle = o.duration > 0 || o.ops > 0;
  std::vector<PhaseDef> phases;
  switch (o.workload) {
    case WorkloadKind::kBench:
    case WorkloadKind::kMix:
      if (o.preload) phases.push_back({"preload", make_fill(values, o.key_space, o.value_min, o.value_max), false});
      phases.push_back({std::string(workload_name(o.workload)),
                        make_mix(values, chooser, *o.get_ratio, o.value_min, o.value_max), true});
      break;
    case WorkloadKind::kBlast:
      phases.push_back(
          {"blast", make_blast(values, chooser, *o.get_ratio, o.value_min, o.value_max, o.multiget_max), true});
      break;
    case WorkloadKind::kSetGet:
      phases.push_back({"setget", make_setget(values, o.key_space, o.value_min, o.value_max, cycle), true});
      break;
    case WorkloadKind::kSizes: phases.push_back({"sizes", make_sizes(values, sizes), true}); break;
    case WorkloadKind::kFill:
      phases.push_back({"fill", make_fill(values, o.key_space, o.value_min, o.value_max), true});
      break;
    case WorkloadKind::kSetOps:
      phases.push_back({"setops", make_setops(values, o.protocol, o.key_space, o.value_min, o.value_max, cycle), true});
      break;
  }
  return phases;
}

PhasePlan phase_plan(const Options& o, const PhaseDef& def, size_t index) {
  PhasePlan plan;
  plan.workload = def.workload.get();
  plan.phase = index;
  // A preload is a closed loop as fast as it goes, whatever the measured phase asks for.
  plan.pipeline = def.measured ? o.pipeline : std::max(o.pipeline, 16u);
  plan.start_ns = now_ns() + 2'000'000;  // the threads are started well within 2 ms
  if (def.measured) {
    plan.rate = o.rate;
    plan.ops = o.ops;
    if (o.duration > 0) plan.end_ns = plan.start_ns + static_cast<int64_t>(o.duration * 1e9);
  }
  return plan;
}

// Runs one phase on every worker (connected already), printing progress if asked.
PhaseResult run_phase(const Options& o, const PhaseDef& def, const PhasePlan& plan,
                      std::vector<std::unique_ptr<Worker>>& workers) {
  const CpuTime cpu_before = process_cpu();
  int64_t last_tick = plan.start_ns;
  uint64_t last_ops = 0;
  const bool progress = o.progress.value_or(false);
  on_all_workers(
      workers, [&](Worker& w) { w.run(plan); },
      [&] {
        if (!progress) return;
        const int64_t now = now_ns();
        uint64_t ops = 0, errors = 0;
        for (auto& w : workers) {
          ops += w->progress_ops();
          errors += w->progress_errors();
        }
        const double rate =
            now > last_tick ? static_cast<double>(ops - last_ops) * 1e9 / static_cast<double>(now - last_tick) : 0;
        fmt::print(stdout, "\r\x1b[K[{}] {:.0f}s  {:.0f} ops/s  {} requests  {} errors", def.name,
                   static_cast<double>(now - plan.start_ns) / 1e9, rate, ops, errors);
        std::fflush(stdout);
        last_tick = now;
        last_ops = ops;
      });
  if (progress) {
    fmt::print(stdout, "\r\x1b[K");
    std::fflush(stdout);
  }
  const CpuTime cpu_after = process_cpu();
  PhaseResult result;
  result.name = def.name;
  result.measured = def.measured;
  for (auto& w : workers) result.stats.merge(w->stats());
  result.stats.begin_ns = plan.start_ns;
  result.elapsed_s = static_cast<double>(std::max<int64_t>(0, result.stats.end_ns - plan.start_ns)) / 1e9;
  result.cpu.user_s = cpu_after.user_s - cpu_before.user_s;
  result.cpu.system_s = cpu_after.system_s - cpu_before.system_s;
  return result;
}

// Connects every worker's connections; false (with the failure in `report`) when none connects.
bool connect_phase(const Options& o, const Target& target, const PhaseDef& def,
                   std::vector<std::unique_ptr<Worker>>& workers, RunReport& report) {
  for (auto& w : workers) w->reset_stats();
  const int64_t connect_deadline = now_ns() + int64_t{o.timeout_ms} * 1'000'000;
  on_all_workers(
      workers, [&](Worker& w) { w.connect_all(connect_deadline); }, [] {});
  size_t connected = 0;
  for (auto& w : workers) connected += w->connected();
  if (connected > 0) return true;
  report.fatal = fmt::format("no connection to {} could be established", target.name);
  PhaseResult result;  // keep the connect errors in the report
  result.name = def.name;
  result.measured = def.measured;
  for (auto& w : workers) result.stats.merge(w->stats());
  if (!o.json) print_phase(stdout, result);
  report.phases.push_back(std::move(result));
  return false;
}

}  // namespace

int run(const Options& given) {
  const CpuTime cpu_at_start = process_cpu();
  RunReport report;
  report.options = given.effective();
  const Options& o = report.options;

  Target target;
  report.fatal = resolve_target(o, target);
  report.target = report.fatal.empty() ? target.name : (o.unix_path.empty() ? o.host : o.unix_path);

  std::vector<size_t> sizes;
  if (o.workload == WorkloadKind::kSizes) sizes = size_schedule(o.size_max, o.size_step);
  report.sizes = sizes.size();
  report.key_prefix = key_prefix(o.workload);
  size_t largest = std::max<size_t>(o.value_max, kPieceMax);
  if (!sizes.empty()) largest = std::max(largest, sizes.back());

  const KeyFormat keys(o.key_length, key_prefix(o.workload));
  const ValueModel values(o.seed, largest);
  const bool uses_chooser =
      o.workload == WorkloadKind::kBlast || o.workload == WorkloadKind::kBench || o.workload == WorkloadKind::kMix;
  const KeyChooser chooser(uses_chooser ? o.key_space : 1, o.key_dist, o.zipf_theta);
  std::vector<PhaseDef> phases = plan_phases(o, values, chooser, sizes);

  if (!o.json) print_header(stdout, report);

  std::vector<std::unique_ptr<Worker>> workers;
  if (report.fatal.empty()) {
    for (unsigned t = 0; t < o.threads; ++t) {
      std::vector<uint64_t> ids;
      for (uint64_t id = t; id < o.connections; id += o.threads) ids.push_back(id);
      workers.push_back(std::make_unique<Worker>(o, target, keys, values, std::move(ids), o.connections));
    }
  }
  for (size_t index = 0; index < phases.size() && report.fatal.empty(); ++index) {
    const PhaseDef& def = phases[index];
    if (!connect_phase(o, target, def, workers, report)) break;
    PhaseResult result = run_phase(o, def, phase_plan(o, def, index), workers);
    if (!o.json) print_phase(stdout, result);
    report.phases.push_back(std::move(result));
  }
  workers.clear();

  const CpuTime cpu_at_end = process_cpu();
  report.cpu.user_s = cpu_at_end.user_s - cpu_at_start.user_s;
  report.cpu.system_s = cpu_at_end.system_s - cpu_at_start.system_s;
  if (o.json) {
    fmt::print(stdout, "{}\n", report_json(report));
  } else {
    print_summary(stdout, report);
  }
  std::fflush(stdout);
  return report.errors() == 0 ? 0 : 1;
}

int main_entry(int argc, char** argv) {
  Options options;
  const int code = parse_options(argc, argv, options);
  if (code >= 0) return code;
  return run(options);
}

}  // namespace rend::loadgen
