#include "supervisor/systemd_notifier.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace rend::supervisor {

SystemdNotifier::SystemdNotifier(uv_loop_t* loop) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  uint64_t usec = 0;
  uv_timer_init(loop, &watchdog_);
  watchdog_.data = this;
  if (!enabled_ || sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  // The timer is not referenced: it must never be what keeps the loop running.
  uv_unref(reinterpret_cast<uv_handle_t*>(&watchdog_));
  const uint64_t every_ms = std::max<uint64_t>(usec / 2000, 1);
  uv_timer_start(
      &watchdog_, [](uv_timer_t* t) { static_cast<SystemdNotifier*>(t->data)->send("WATCHDOG=1"); }, every_ms,
      every_ms);
  spdlog::info("systemd watchdog: keep-alive every {} ms", every_ms);
}

void SystemdNotifier::ready(const std::string& status) { send("READY=1\nSTATUS=" + status); }

void SystemdNotifier::reloading() {
  // MONOTONIC_USEC: what systemd's Type=notify-reload asks for beside RELOADING=1.
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t usec = static_cast<uint64_t>(now.tv_sec) * 1000000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
  send("RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=" + std::to_string(usec));
}

void SystemdNotifier::status(const std::string& text) { send("STATUS=" + text); }

void SystemdNotifier::stopping() { send("STOPPING=1\nSTATUS=stopping"); }

void SystemdNotifier::send(const std::string& state) {
  if (!enabled_) return;
  // unset_environment 0: the variable stays for the next message. Children inherit it, which is
  // harmless: none of them notifies, and the unit's NotifyAccess=main would ignore them anyway.
  if (const int rc = sd_notify(0, state.c_str()); rc < 0) spdlog::warn("sd_notify: {}", strerror(-rc));
}

}  // namespace rend::supervisor
