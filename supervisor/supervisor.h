// rend, the supervisor: binds the listening sockets, creates the shared stats block, starts and
// watches memcached (optional) and the workers, restarts what dies, reloads on SIGHUP and stops
// gracefully on SIGTERM/SIGINT.
//
// Worker slots: slot i owns one SO_REUSEPORT socket for the client port, created here and kept
// here for the slot's whole life, so the kernel keeps queueing connections for a slot whose worker
// is being restarted; the new worker accepts them. Rolling restarts start the replacement on the
// same socket first, and once it is ready the old worker hands it its clients (hand_clients_over):
// no connection is refused or closed at any point.
#pragma once

#include <uv.h>

#include <array>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/shared_stats.h"
#include "supervisor/activated_sockets.h"
#include "supervisor/child_process.h"
#include "supervisor/connection_store.h"
#include "supervisor/control_server.h"
#include "supervisor/held_restart.h"
#include "supervisor/metrics_exporter.h"
#include "supervisor/service.h"
#include "supervisor/systemd_notifier.h"
#include "supervisor/upgrade_state.h"

namespace rend::supervisor {

// The path of our executable `name`: next to rend once installed, or in its module's folder
// (`build_folder`) of the build tree; `name` alone (looked up on PATH) when neither has it.
std::string sibling_binary(const std::string& name, const std::string& build_folder);

// rend --resume-fd: the supervisor's next image after an in-place upgrade, from the state in
// `state_fd` (Supervisor::resume); `failed_upgrade` says why, when it is the previous image taking
// its state back from a next one that could not. Returns the exit code once stopped.
int resume_supervisor(int state_fd, const std::string& failed_upgrade);

class Supervisor {
 public:
  Supervisor(uv_loop_t* loop, std::string config_path, Config config);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor();

  // Returns the process exit code once stopped.
  int run();

  // Re-reads the config file; on success rolls every worker onto it. Returns the reason on failure.
  Status reload();
  void rolling_restart();
  void stop();

  // In-place upgrade (rendctl upgrade, SIGUSR2; supervisor_upgrade.cc). Once settled, the binary
  // now at rend's path is checked against this supervisor's state in a child (--check-upgrade),
  // then executed in place of this image: same pid, same sockets, memcached and rend-l2 adopted
  // running, and the workers then rolled onto the new rend-worker with their clients handed over.
  // `done` gets the failure if the upgrade does not happen (this image goes on); after the exec the
  // next image answers on `reply_fd` (a duplicate of the asking connection, or -1).
  void upgrade(std::function<void(Status)> done, int reply_fd);
  // The next image's side (rend --resume-fd): takes over everything `state` names and runs. If it
  // cannot, it executes the previous image's binary again with the same state (fall_back_to_previous).
  // Returns the exit code once stopped.
  int resume(UpgradeState state, int state_fd);

 private:
  struct Slot {
    Supervisor* owner = nullptr;
    int index = 0;
    int tcp_fd = -1;
    int batch_fd = -1;  // the batch port's socket, when L2 is enabled
    std::unique_ptr<ChildProcess> worker;
    bool ready = false;
    bool retiring = false;                // being removed by a scale-down
    bool failed = false;                  // its worker exited with kExitBadConfig: left down until a reload
    uint64_t generation = 0;              // the roll its worker was started in (see roll_generation_)
    ChildProcess* replacement = nullptr;  // a roll's new worker, until it is ready or exits
    int restarts = 0;
    int crash_streak = 0;
    uint64_t started_ms = 0;
    uv_timer_t* restart_timer = nullptr;
    // The live worker process owning each of the slot's stats entries (SharedStats), or null.
    std::array<ChildProcess*, kEntriesPerSlot> stats_owners{};
  };

  Status open_listeners();  // the ports (checked free), each slot's sockets, the unix socket
  Status open_endpoints();  // metrics and the control socket
  void log_start() const;
  void install_handlers();  // signals and the supervisor's timers
  Status open_slot_socket(Slot& slot);
  void close_slot_sockets(Slot& slot);
  // A scaled-down slot whose worker is gone: its sockets close, its gauges read zero.
  void remove_slot(Slot& slot);
  void create_services();  // memcached_ and l2_, not started
  void start_services();
  // memcached's command line for the current config; `report` logs why warm restarts are off.
  std::vector<std::string> memcached_argv(bool report = false) const;
  // Where memcached keeps its items for a warm restart (-e), or "" when it cannot (see config).
  std::string memcached_memory_file(bool report) const;
  int memcached_stop_signal() const;
  uint64_t memcached_start_delay_ms() const;
  // Every running worker process: slots' workers, roll replacements, and those still draining.
  std::vector<ChildProcess*> running_workers() const;
  std::vector<std::string> l2_argv() const;
  void start_workers();
  Status spawn_worker(Slot& slot, std::unique_ptr<ChildProcess>& out, std::function<void()> on_ready);
  void start_slot(Slot& slot);
  void on_worker_exit(Slot& slot, ChildProcess* child, int64_t status, int signal);
  void schedule_restart(Slot& slot);
  void resize(int workers);
  void roll_next();
  void queue_roll();  // every slot into the roll; those already on roll_generation_ are skipped
  void retire(std::unique_ptr<ChildProcess> child);
  // Tells `from` to hand its clients to `to` at their next request boundaries and then exit
  // (worker/connection_handoff.h). False if either cannot be told: stop `from` with SIGTERM then.
  bool hand_clients_over(ChildProcess& from, ChildProcess& to);
  // The worker that takes a scaled-down slot's clients; null if none is ready.
  Slot* successor_for(const Slot& leaving);
  // At a stop under systemd: `worker` hands its clients to the store instead of closing them.
  bool hand_clients_to_store(ChildProcess& worker);
  // At a start: the connections systemd kept since the last stop go to the workers.
  void restore_stored_clients();
  void maybe_finish_stop();
  void finish_stop();
  std::string worker_binary() const;
  // A stats entry of the slot that no live process owns, for a new worker of it.
  size_t free_stats_entry(const Slot& slot) const;
  // `child` has exited: its entry's gauges are zeroed and the entry is free again.
  void release_stats_entry(Slot& slot, const ChildProcess* child);
  void update_up_gauges();
  void notify_ready();  // READY=1 to systemd, unless stopping

  // In-place upgrade (supervisor_upgrade.cc).
  UpgradeState capture_state(int reply_fd) const;
  void upgrade_when_settled();
  // Nothing stands in the way of the exec (not stopping, settled, memcached and rend-l2 running).
  Status ready_to_exec() const;
  void check_new_binary();
  void exec_after_a_quiet_turn();
  // Executes the new binary; returns only if that failed, with this image as it was.
  Status exec_next_image(int reply_fd);
  // The next image's side: the sockets, stats block, counters and slots; then the children.
  void take_over(const UpgradeState& state);
  void adopt_services(const UpgradeState& state);
  void adopt_workers(const UpgradeState& state);
  // The upgrade did not happen: tells who asked why, and this image goes on.
  void finish_upgrade(Status outcome);

  // Control commands (rendctl).
  void handle_control(const ControlRequest& request, ControlServer::Reply reply);
  nlohmann::json status() const;
  // The processes (rend, rend-worker N, memcached, rend-l2) still running an executable that has
  // since been replaced on disk, as a package upgrade does: they need a restart to run the new one.
  nlohmann::json replaced_executables() const;
  // Calls `done` once no restart, scale or roll is in progress (every slot has a ready worker).
  void when_settled(std::function<void()> done);
  bool settled() const;
  void check_settled();

  uv_loop_t* loop_;
  std::string config_path_;
  Config config_;
  uint64_t started_ms_ = 0;
  SupervisorMetrics metrics_;
  std::unique_ptr<MetricsExporter> exporter_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<SystemdNotifier> notifier_;
  std::vector<std::function<void()>> settle_waiters_;
  uv_timer_t settle_timer_;
  SharedStats stats_;
  int stats_fd_ = -1;
  int unix_fd_ = -1;
  bool unix_socket_bound_here_ = false;  // not systemd's: removed at stop
  ActivatedSockets activated_;           // sockets systemd holds for rend (socket activation)
  ConnectionStore store_;                // clients kept in systemd's store across a restart of rend
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::unique_ptr<ChildProcess>> retired_;  // stopping or stopped, kept until finished
  std::unique_ptr<Service> memcached_;
  std::vector<std::string> memcached_running_argv_;  // what the running memcached was started with
  bool memcached_started_warm_ = false;              // ... with a memory file
  // Planned restarts of memcached (rendctl restart-memcached, a reload that changes its settings)
  // and of rend-l2 (rendctl restart-l2), with the workers holding that tier's requests meanwhile.
  HeldRestart l1_restart_;
  HeldRestart l2_restart_;
  std::unique_ptr<Service> l2_;
  int services_pending_ = 0;  // services not yet answering before the workers start
  std::deque<int> rolling_;   // slots still to roll
  bool rolling_busy_ = false;
  // Bumped by each reload and rolling restart: a slot whose worker started in the current
  // generation already runs what the roll would give it, and is not replaced again.
  uint64_t roll_generation_ = 0;
  bool workers_started_ = false;
  bool stopping_ = false;
  bool services_stopping_ = false;
  int exit_code_ = 0;
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  uv_signal_t sighup_;
  uv_timer_t stop_timer_;
  uv_signal_t sigusr2_;
  uv_signal_t sigchld_;    // reaps the children adopted from the previous image
  std::string self_path_;  // rend's executable as it was started: an upgrade executes what is there now
  bool upgrading_ = false;
  std::function<void(Status)> upgrade_done_;
  int upgrade_reply_fd_ = -1;
  int upgrade_exe_fd_ = -1;  // the new binary, opened once for its check and its exec
  uv_idle_t exec_idle_;
  uv_check_t exec_check_;
  int exec_turns_ = 0;
  uint64_t upgrade_deadline_ms_ = 0;
  std::unique_ptr<ChildProcess> upgrade_check_;  // the new binary checking the state
  std::vector<std::unique_ptr<ChildProcess>> finished_checks_;
  uv_timer_t upgrade_timer_;  // waits for settling, then bounds the check
  uv_timer_t reap_timer_;
};

}  // namespace rend::supervisor
