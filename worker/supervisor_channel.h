// Commands from the supervisor to one worker, over the SOCK_SEQPACKET socket it was started with
// (--command-fd). Each command is one message, some with a descriptor attached:
//
//   "hand-off"   + socket: drain by handing every client connection over that socket (to another
//                worker) at its next request boundary, then exit;
//   "take-over"  + socket: serve the connections another worker hands over that socket.
//
// SIGTERM stays the way to stop without a successor (clients are closed between requests).
#pragma once

#include <uv.h>

#include <functional>

namespace rend::worker {

class SupervisorChannel {
 public:
  using OnSocket = std::function<void(int fd)>;
  // Takes ownership of `fd`.
  SupervisorChannel(uv_loop_t* loop, int fd, OnSocket on_hand_off, OnSocket on_take_over);
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
  OnSocket on_hand_off_;
  OnSocket on_take_over_;
};

}  // namespace rend::worker
