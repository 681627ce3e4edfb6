// The services the supervisor runs beside its workers: memcached (L1) and rend-l2, their command
// lines, and the start of the stack (workers start once both answer).
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/exit_codes.h"
#include "supervisor/supervisor.h"

namespace rend::supervisor {

namespace {

std::string unix_path_of(const std::string& address) {
  return address.starts_with("unix:") ? address.substr(5) : address;
}

}  // namespace

// ---- memcached and rend-l2 --------------------------------------------------------------------------

std::vector<std::string> Supervisor::memcached_argv() const {
  const MemcachedConfig& m = config_.memcached;
  std::vector<std::string> argv = {m.binary,
                                   "-s",
                                   unix_path_of(config_.l1.address),
                                   "-a",
                                   "0700",
                                   "-m",
                                   std::to_string(m.memory_mb),
                                   "-t",
                                   std::to_string(m.threads),
                                   "-c",
                                   std::to_string(m.max_connections)};
  // Chunked L1 stores only items of l1.chunk_size, so memcached's item limit does not apply.
  if (!config_.l1_chunked && config_.worker.max_item_size > 1024 * 1024) {
    argv.push_back("-I");
    argv.push_back(std::to_string(config_.worker.max_item_size + 4096));
  }
  if (geteuid() == 0) {
    argv.push_back("-u");
    argv.push_back("root");
  }
  argv.insert(argv.end(), m.extra_args.begin(), m.extra_args.end());
  return argv;
}

std::vector<std::string> Supervisor::l2_argv() const {
  // rend-l2 reads the effective config from a file of its own, so a reload can never hand it a
  // config the supervisor did not validate.
  const std::string path = (std::filesystem::path(config_.run_dir) / "rend-l2.json").string();
  {
    std::ofstream out(path);
    out << config_.effective.dump(2) << "\n";
  }
  std::string binary = config_.l2.binary;
  if (binary.empty()) binary = sibling_binary("rend-l2", "l2");
  return {binary, "--config", path, "--stats-fd", "3"};
}

void Supervisor::start_services() {
  auto one_ready = [this] {
    if (--services_pending_ == 0) start_workers();
  };
  services_pending_ = 1 + (config_.memcached.enabled ? 1 : 0) + (config_.l2.enabled && config_.l2.supervised ? 1 : 0);
  if (config_.memcached.enabled) {
    memcached_ = std::make_unique<Service>(loop_, Service::Options{"memcached",
                                                                   [this] { return memcached_argv(); },
                                                                   {},
                                                                   unix_path_of(config_.l1.address),
                                                                   config_.supervisor,
                                                                   &metrics_.memcached_restarts,
                                                                   &metrics_.memcached_up,
                                                                   kExitMemcachedUsage});
    memcached_->start(one_ready);
  }
  if (config_.l2.enabled && config_.l2.supervised) {
    l2_ = std::make_unique<Service>(loop_, Service::Options{"rend-l2",
                                                            [this] { return l2_argv(); },
                                                            {stats_fd_},
                                                            unix_path_of(config_.l2.backend.address),
                                                            config_.supervisor,
                                                            &metrics_.l2_restarts,
                                                            &metrics_.l2_up,
                                                            kExitBadConfig});
    l2_->start(one_ready);
  }
  one_ready();
}

}  // namespace rend::supervisor
