// Commands from the supervisor to one worker, over the SOCK_SEQPACKET socket it was started with
// (--command-fd). Each command is one message, some with a descriptor attached:
//
//   "hand-off"   + socket: drain by handing every client connection over that socket (to another
//                worker) at its next request boundary, then exit;
//   "take-over"  + socket: serve the connections another worker hands over that socket;
//   "l1-hold"    memcached is about to restart: keep new L1 requests, and say "l1-held" on the
//                ready pipe once every L1 request sent has been answered;
//   "l1-release" memcached is back: reconnect and send what was kept;
//   "l2-hold", "l2-release": the same for a planned restart of rend-l2 ("l2-held").
//
// SIGTERM stays the way to stop without a successor (clients are closed between requests).
#pragma once

#include <uv.h>

#include <functional>

#include "common/request_metrics.h"

namespace rend::worker {

class SupervisorChannel {
 public:
  struct Handlers {
    std::function<void(int fd)> hand_off;
    std::function<void(int fd)> take_over;
    std::function<void(Tier)> hold;
    std::function<void(Tier)> release;
  };
  // Takes ownership of `fd`.
  SupervisorChannel(uv_loop_t* loop, int fd, Handlers handlers);
  SupervisorChannel(const SupervisorChannel&) = delete;
  SupervisorChannel& operator=(const SupervisorChannel&) = delete;
  ~SupervisorChannel();
  // Stops listening (the loop is ending).
  void close();

 private:
  void on_readable();

  int fd_;
  uv_poll_t poll_;
  bool closed_ = false;
  Handlers handlers_;
};

}  // namespace rend::worker
