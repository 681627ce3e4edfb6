// What the supervisor hands to its next image in an in-place upgrade (rendctl upgrade, SIGUSR2):
// everything it needs to go on as the same supervisor without restarting anything. The image
// before the exec writes it to a memfd; the image after reads it back (rend --resume-fd).
//
// Descriptors are passed by number: execve keeps every descriptor without FD_CLOEXEC, so the
// numbers stay valid in the next image. Missing fields read as their defaults, so an image can
// resume from a state written by an older one.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace rend::supervisor {

// A worker process: a slot's current one, or one that is still handing over or draining.
struct AdoptedWorker {
  int slot = 0;
  int pid = 0;
  int ready_fd = -1;    // the supervisor's end of its ready pipe
  int command_fd = -1;  // the supervisor's end of its command socket
  int stats_entry = 0;
  bool current = true;  // the slot's worker (false: retired, still draining)
};

struct AdoptedSlot {
  int index = 0;
  int tcp_fd = -1;
  int batch_fd = -1;
  int restarts = 0;
  int crash_streak = 0;
  bool failed = false;
  uint64_t generation = 0;
  uint64_t started_ms = 0;  // uv_now (a monotonic clock shared by both images)
};

struct AdoptedService {
  int pid = 0;  // 0: not supervised
  int restarts = 0;
};

struct UpgradeState {
  static constexpr int kFormat = 1;
  int format = kFormat;
  std::string config_path;
  nlohmann::json config;  // the effective configuration
  uint64_t started_ms = 0;
  uint64_t roll_generation = 0;
  int stats_fd = -1;
  int unix_fd = -1;
  bool unix_bound_here = false;
  int activated_main_fd = -1;
  int activated_batch_fd = -1;
  int control_fd = -1;
  int reply_fd = -1;           // the connection of the rendctl upgrade that asked for it, if any
  int exec_fd = -1;            // the binary executed (opened once, checked, then executed)
  int fallback_exe_fd = -1;    // the previous image's executable, to go back to if this one cannot go on
  std::string failed_upgrade;  // not written: why the next image gave up (rend --upgrade-failed)
  std::vector<AdoptedSlot> slots;
  std::vector<AdoptedWorker> workers;
  AdoptedService memcached;
  std::vector<std::string> memcached_argv;
  bool memcached_warm = false;
  AdoptedService l2;
  std::vector<uint64_t> worker_restarts;  // SupervisorMetrics, per slot
  uint64_t memcached_restarts = 0;
  uint64_t l2_restarts = 0;
  uint64_t reloads_ok = 0;
  uint64_t reloads_failed = 0;
  uint64_t upgrades_ok = 0;
  uint64_t upgrades_failed = 0;

  // Every descriptor the next image takes over (not the fallback executable).
  std::vector<int> descriptors() const;
};

// Writes `state` to a new memfd, returned in `fd` (without FD_CLOEXEC, for the exec).
Status write_upgrade_state(const UpgradeState& state, int& fd);
// Reads the state from the start of `fd`; checks its format.
Status read_upgrade_state(int fd, UpgradeState& state);
// The previous image's executable named by a state that does not read as a whole (-1 if none).
int fallback_exe_of(int fd);
// Whether every descriptor the state names is open and every process it names is a child of this
// process (an exec keeps them).
Status check_upgrade_state(const UpgradeState& state);
// `pid` is a child of this process, running or exited and not yet reaped.
bool is_own_child(int pid);

}  // namespace rend::supervisor
