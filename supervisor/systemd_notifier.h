// Tells systemd (Type=notify) how rend is doing, through libsystemd's sd_notify: READY=1 once
// every worker serves (memcached and rend-l2 answered before the workers started), RELOADING=1
// then READY=1 around a reload, STOPPING=1, a STATUS= line, and WATCHDOG=1 from the supervisor's
// own event loop every half WatchdogSec=, so a supervisor whose loop hangs is restarted.
//
// Outside systemd (no NOTIFY_SOCKET) every call does nothing and no timer runs.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

namespace rend::supervisor {

class SystemdNotifier {
 public:
  explicit SystemdNotifier(uv_loop_t* loop);
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  void ready(const std::string& status);
  void reloading();
  void stopping();
  // Running under systemd (NOTIFY_SOCKET set).
  bool enabled() const { return enabled_; }
  void status(const std::string& text);

 private:
  void send(const std::string& state);

  bool enabled_ = false;
  // Closed with the loop's other handles at exit (close_loop), while this object still exists.
  uv_timer_t watchdog_;
};

}  // namespace rend::supervisor
