// The supervisor's stop (SIGTERM, SIGINT, rendctl stop): the workers drain, then memcached and
// rend-l2 stop. Under systemd the workers hand their clients to the supervisor instead of closing
// them, and the clients wait in systemd's file descriptor store for the next start
// (connection_store.h), which takes them back.
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include "common/fd_limit.h"
#include "supervisor/supervisor.h"

namespace rend::supervisor {

void Supervisor::stop() {
  if (stopping_) return;
  stopping_ = true;
  rolling_.clear();
  // Workers holding requests for a restart of memcached or rend-l2 send them now, and drain.
  l1_restart_.abort(Status::error("rend is stopping"));
  l2_restart_.abort(Status::error("rend is stopping"));
  if (notifier_) notifier_->stopping();
  if (upgrade_check_) upgrade_check_->kill(SIGKILL);
  spdlog::info("stopping: draining workers");
  if (notifier_ && notifier_->enabled()) {
    // Every worker's clients pass through the supervisor on their way to systemd's store: room
    // for all of them, or those past the limit are closed.
    log_fd_limit(raise_fd_limit(worker_descriptors(config_) * slots_.size()), "rend",
                 "keeping every client connection across the restart");
  }
  for (auto& s : slots_) {
    if (s->restart_timer != nullptr) uv_timer_stop(s->restart_timer);
    if (s->worker && !hand_clients_to_store(*s->worker)) s->worker->kill(SIGTERM);
    if (s->replacement != nullptr) s->replacement->kill(SIGTERM);
  }
  for (auto& c : retired_) c->kill(SIGTERM);
  uv_timer_start(
      &stop_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Supervisor*>(t->data);
        spdlog::warn("stop timeout: killing what is left");
        for (auto& s : self->slots_) {
          if (s->worker) s->worker->kill(SIGKILL);
        }
        for (auto& c : self->retired_) c->kill(SIGKILL);
        if (self->memcached_) self->memcached_->kill_now();
        if (self->l2_) self->l2_->kill_now();
      },
      static_cast<uint64_t>(config_.supervisor.stop_timeout_ms), 0);
  maybe_finish_stop();
}

bool Supervisor::hand_clients_to_store(ChildProcess& worker) {
  if (!notifier_ || !notifier_->enabled() || !worker.running()) return false;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0) return false;
  const bool sent = worker.send_command("hand-off", pair[0]);
  close(pair[0]);
  if (!sent) {
    close(pair[1]);
    return false;
  }
  store_.collect_from(pair[1], [this] { maybe_finish_stop(); });
  return true;
}

void Supervisor::restore_stored_clients() {
  // Stopping before the workers served: they stay in the store for the next start.
  if (store_.stored() == 0 || stopping_) return;
  // Spread over the workers, each over a handoff channel of its own, as a departing worker would.
  std::vector<int> channels;
  size_t next = 0;
  std::vector<ChildProcess*> workers;
  for (auto& s : slots_) {
    if (s->worker && s->ready && s->worker->running()) workers.push_back(s->worker.get());
  }
  for (ChildProcess* w : workers) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) continue;
    // Blocking, with a bound: the worker reads as its loop turns.
    const timeval bound{2, 0};
    setsockopt(pair[0], SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound);
    if (w->send_command("take-over", pair[1])) {
      channels.push_back(pair[0]);
    } else {
      close(pair[0]);
    }
    close(pair[1]);
  }
  const size_t stored = store_.stored();
  const size_t sent =
      store_.replay([&]() -> int { return channels.empty() ? -1 : channels[next++ % channels.size()]; });
  for (int fd : channels) close(fd);  // each worker's receiver ends here
  spdlog::info("{} of {} client connections kept by systemd since the last stop handed to the workers", sent, stored);
}

void Supervisor::maybe_finish_stop() {
  if (!stopping_) return;
  for (auto& s : slots_) {
    if (s->worker && s->worker->running()) return;
  }
  for (auto& c : retired_) {
    if (c->running()) return;
  }
  // Workers are gone, so every in-flight request has been answered: the backends can go.
  if (services_stopping_ || store_.collecting()) return;
  services_stopping_ = true;
  if (const size_t kept = store_.store(); kept > 0) {
    spdlog::info("{} client connections kept in systemd's store for the next start", kept);
  }
  auto pending = std::make_shared<int>(2);
  auto one_stopped = [this, pending] {
    if (--*pending == 0) finish_stop();
  };
  if (memcached_) {
    memcached_->stop(one_stopped);
  } else {
    one_stopped();
  }
  if (l2_) {
    l2_->stop(one_stopped);
  } else {
    one_stopped();
  }
}

void Supervisor::finish_stop() {
  static bool done = false;
  if (done) return;
  done = true;
  spdlog::info("stopped");
  for (auto& slot : slots_) {
    if (slot->restart_timer != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(slot->restart_timer),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      slot->restart_timer = nullptr;
    }
  }
  if (control_) control_->stop();
  uv_timer_stop(&settle_timer_);
  for (auto& w : settle_waiters_) w();
  settle_waiters_.clear();
  // systemd's socket stays where it is, for the next start.
  if (unix_socket_bound_here_) unlink(config_.listen.unix_socket.c_str());
  uv_stop(loop_);
}

}  // namespace rend::supervisor
