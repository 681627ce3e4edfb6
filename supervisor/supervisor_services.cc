// The services the supervisor runs beside its workers: memcached (L1) and rend-l2, their command
// lines, and the start of the stack (workers start once both answer).
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <ctime>

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

std::vector<std::string> Supervisor::memcached_argv(bool report) const {
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
  if (const std::string file = memcached_memory_file(report); !file.empty()) {
    argv.push_back("-e");
    argv.push_back(file);
  }
  if (geteuid() == 0) {
    argv.push_back("-u");
    argv.push_back("root");
  }
  argv.insert(argv.end(), m.extra_args.begin(), m.extra_args.end());
  return argv;
}

std::string Supervisor::memcached_memory_file(bool report) const {
  if (!config_.memcached.warm_restart) return "";
  const std::filesystem::path file = std::filesystem::path(config_.run_dir) / "memcached.memory";
  // memcached maps the file for all of its item memory: on a disk it would write the cache back
  // to the disk all the time, and a RAM filesystem without room for it ends in SIGBUS.
  struct statfs fs {};
  if (statfs(config_.run_dir.c_str(), &fs) != 0 || (fs.f_type != static_cast<decltype(fs.f_type)>(TMPFS_MAGIC) &&
                                                    fs.f_type != static_cast<decltype(fs.f_type)>(RAMFS_MAGIC))) {
    if (report)
      spdlog::warn(
          "memcached.warm_restart: run_dir {} is not on a RAM filesystem (tmpfs); memcached runs without "
          "a memory file and a restart of it empties L1",
          config_.run_dir);
    return "";
  }
  struct statvfs vfs {};
  struct stat existing {};
  const uint64_t have = statvfs(config_.run_dir.c_str(), &vfs) == 0 ? uint64_t{vfs.f_bavail} * vfs.f_frsize : 0;
  const uint64_t reused = stat(file.c_str(), &existing) == 0 ? static_cast<uint64_t>(existing.st_blocks) * 512 : 0;
  const uint64_t need = (static_cast<uint64_t>(config_.memcached.memory_mb) << 20) + (16u << 20);
  if (have + reused < need) {
    if (report)
      spdlog::warn(
          "memcached.warm_restart: {} has {} MiB free, memcached needs {} MiB for its memory file; it runs "
          "without one and a restart of it empties L1",
          config_.run_dir, (have + reused) >> 20, need >> 20);
    return "";
  }
  return file.string();
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

int Supervisor::memcached_stop_signal() const {
  // With a memory file, SIGUSR1 makes memcached save its index and exit, so the next one started
  // on the file comes back with the items; SIGTERM would leave them unusable.
  return memcached_started_warm_ ? SIGUSR1 : SIGTERM;
}

uint64_t Supervisor::memcached_start_delay_ms() const {
  // memcached refuses to restore a cache saved within the same second of the wall clock ("restart
  // incompatible due to setting for [stop_time]"): a start right after a save waits for the next
  // second.
  const std::string file = memcached_memory_file(false);
  struct stat meta {};
  if (file.empty() || stat((file + ".meta").c_str(), &meta) != 0) return 0;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  if (now.tv_sec > meta.st_mtim.tv_sec) return 0;
  return 1000 - static_cast<uint64_t>(now.tv_nsec / 1000000) + 5;
}

void Supervisor::create_services() {
  if (config_.memcached.enabled) {
    auto argv = [this] {
      memcached_running_argv_ = memcached_argv(true);
      memcached_started_warm_ = std::find(memcached_running_argv_.begin(), memcached_running_argv_.end(), "-e") !=
                                memcached_running_argv_.end();
      if (!memcached_started_warm_) {
        // A memory file left from when warm restarts were on holds memory_mb of RAM for nothing.
        std::error_code ec;
        for (const char* name : {"memcached.memory", "memcached.memory.meta"}) {
          std::filesystem::remove(std::filesystem::path(config_.run_dir) / name, ec);
        }
      }
      return memcached_running_argv_;
    };
    memcached_ = std::make_unique<Service>(loop_, Service::Options{"memcached",
                                                                   argv,
                                                                   {},
                                                                   unix_path_of(config_.l1.address),
                                                                   config_.supervisor,
                                                                   &metrics_.memcached_restarts,
                                                                   &metrics_.memcached_up,
                                                                   kExitMemcachedUsage,
                                                                   [this] { return memcached_stop_signal(); },
                                                                   [this] { return memcached_start_delay_ms(); }});
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
  }
}

void Supervisor::start_services() {
  create_services();
  auto one_ready = [this] {
    if (--services_pending_ == 0) start_workers();
  };
  services_pending_ = 1 + (memcached_ ? 1 : 0) + (l2_ ? 1 : 0);
  if (memcached_) memcached_->start(one_ready);
  if (l2_) l2_->start(one_ready);
  one_ready();
}

}  // namespace rend::supervisor
