// rend-loadgen's driver: turns the options into phases (a workload each), runs every phase on the
// worker threads, and reports. main.cc is a thin wrapper over main_entry().
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "loadgen/options.h"
#include "loadgen/stats.h"

namespace rend::loadgen {

struct CpuTime {
  double user_s = 0;
  double system_s = 0;
  double total() const { return user_s + system_s; }
};
CpuTime process_cpu();  // getrusage(RUSAGE_SELF): every thread of the process

struct PhaseResult {
  std::string name;
  bool measured = true;  // false: a preparation step (preload), reported but not the point
  PhaseStats stats;
  CpuTime cpu;           // the whole process's CPU time during the phase
  double elapsed_s = 0;  // from the phase's start to its last reply
  double ops_per_s() const { return elapsed_s > 0 ? static_cast<double>(stats.ops) / elapsed_s : 0; }
  double cpu_us_per_op() const { return stats.ops > 0 ? cpu.total() * 1e6 / static_cast<double>(stats.ops) : 0; }
};

struct RunReport {
  Options options;  // effective
  std::string target;
  char key_prefix = 'k';
  size_t sizes = 0;  // the sizes workload: how many sizes it visits
  std::vector<PhaseResult> phases;
  CpuTime cpu;        // the whole run, start-up included
  std::string fatal;  // a reason the run could not happen at all
  uint64_t errors() const;
};

int main_entry(int argc, char** argv);
// Runs with already parsed options; prints the report (text or JSON) to stdout. Returns the exit
// code: 0 when every request was answered correctly, 1 otherwise.
int run(const Options& options);

// Text report pieces (report.cc).
void print_header(std::FILE* out, const RunReport& report);
void print_phase(std::FILE* out, const PhaseResult& phase);
void print_summary(std::FILE* out, const RunReport& report);
std::string report_json(const RunReport& report);

}  // namespace rend::loadgen
