#include "supervisor/upgrade_state.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace rend::supervisor {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AdoptedWorker, slot, pid, ready_fd, command_fd, stats_entry, current)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AdoptedSlot, index, tcp_fd, batch_fd, restarts, crash_streak, failed,
                                                generation, started_ms)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AdoptedService, pid, restarts)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(UpgradeState, format, config_path, config, started_ms, roll_generation,
                                                stats_fd, unix_fd, unix_bound_here, activated_main_fd,
                                                activated_batch_fd, control_fd, reply_fd, exec_fd, fallback_exe_fd,
                                                slots, workers, memcached, memcached_argv, memcached_warm, l2,
                                                worker_restarts, memcached_restarts, l2_restarts, reloads_ok,
                                                reloads_failed, upgrades_ok, upgrades_failed)

namespace {

constexpr size_t kMaxStateBytes = 16 << 20;  // a few KiB in practice; anything near this is not ours

Status write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = pwrite(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::error(fmt::format("cannot write the upgrade state: {}", strerror(errno)));
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

}  // namespace

std::vector<int> UpgradeState::descriptors() const {
  std::vector<int> fds = {stats_fd, unix_fd, activated_main_fd, activated_batch_fd, control_fd, reply_fd};
  for (const auto& s : slots) fds.insert(fds.end(), {s.tcp_fd, s.batch_fd});
  for (const auto& w : workers) fds.insert(fds.end(), {w.ready_fd, w.command_fd});
  std::erase(fds, -1);
  return fds;
}

Status write_upgrade_state(const UpgradeState& state, int& fd) {
  fd = memfd_create("rend-upgrade-state", 0);
  if (fd < 0) return Status::error(fmt::format("cannot create the upgrade state: {}", strerror(errno)));
  if (Status s = write_all(fd, nlohmann::json(state).dump()); !s) {
    close(fd);
    fd = -1;
    return s;
  }
  return Status::ok();
}

namespace {

Status read_text(int fd, std::string& text) {
  char buffer[65536];
  for (off_t at = 0;;) {
    const ssize_t n = pread(fd, buffer, sizeof buffer, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::error(fmt::format("cannot read the upgrade state: {}", strerror(errno)));
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    at += n;
    if (text.size() > kMaxStateBytes) return Status::error("the upgrade state is too large to be rend's");
  }
  return Status::ok();
}

}  // namespace

int fallback_exe_of(int fd) {
  std::string text;
  if (!read_text(fd, text)) return -1;
  const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return -1;
  const auto it = parsed.find("fallback_exe_fd");
  return it != parsed.end() && it->is_number_integer() ? it->get<int>() : -1;
}

Status read_upgrade_state(int fd, UpgradeState& state) {
  std::string text;
  if (Status s = read_text(fd, text); !s) return s;
  const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return Status::error("the upgrade state is not a JSON object");
  try {
    state = parsed.get<UpgradeState>();
  } catch (const nlohmann::json::exception& e) {
    return Status::error(fmt::format("the upgrade state does not parse: {}", e.what()));
  }
  if (state.format != UpgradeState::kFormat) {
    return Status::error(
        fmt::format("the upgrade state has format {}; this rend reads format {}", state.format, UpgradeState::kFormat));
  }
  return Status::ok();
}

Status check_upgrade_state(const UpgradeState& state) {
  for (int fd : state.descriptors()) {
    if (fcntl(fd, F_GETFD) < 0) return Status::error(fmt::format("descriptor {} of the upgrade state is not open", fd));
  }
  // A service's pid is 0 when it was not running; a worker always has one.
  for (int pid : {state.memcached.pid, state.l2.pid}) {
    if (pid != 0 && !is_own_child(pid)) return Status::error(fmt::format("process {} is not a child of rend", pid));
  }
  for (const auto& w : state.workers) {
    if (!is_own_child(w.pid)) return Status::error(fmt::format("process {} is not a child of rend", w.pid));
  }
  return Status::ok();
}

bool is_own_child(int pid) {
  if (pid <= 0) return false;
  // WNOWAIT: a child that has exited stays a zombie, reaped as usual once adopted.
  siginfo_t info{};
  return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

}  // namespace rend::supervisor
