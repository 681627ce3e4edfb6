// A worker's listening sockets, and the accepting of new clients on them.
//
// libuv's own accept (uv_listen) answers descriptor exhaustion by accepting and closing every
// pending connection: clients that arrive while a worker is at its descriptor limit are reset.
// memcached instead stops accepting and leaves them in the listen backlog until descriptors free
// up. This does the same: each listening socket is watched with a uv_poll and accepted with
// accept4(); at EMFILE, ENFILE, ENOBUFS or ENOMEM every socket stops being watched (counted as a
// pause) and watching resumes when a client connection closes, or after a short retry delay for
// descriptors freed elsewhere. No busy loop while paused.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "worker/tiered.h"

namespace rend::worker {

class Acceptor {
 public:
  // A new client's socket (non-blocking, close-on-exec), and what the socket it came from serves.
  using OnAccept = std::function<void(int fd, bool tcp, TierMode mode)>;
  using OnPause = std::function<void()>;

  Acceptor(uv_loop_t* loop, OnAccept on_accept, OnPause on_pause);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;
  // Closes the listening sockets close_all() has not (the loop has closed the handles by then).
  ~Acceptor();

  // Starts accepting on a listening socket (owned from now on).
  bool add(int fd, bool tcp, TierMode mode);
  // Descriptors may have been freed (a client closed): resume if paused.
  void resume();
  // Stops accepting for good and closes the sockets (a drain).
  void close_all();
  bool paused() const { return paused_; }

 private:
  struct Listener {
    Acceptor* owner;
    int fd;  // -1 once closed
    bool tcp;
    TierMode mode;
    uv_poll_t poll;
  };
  void on_readable(Listener& l);
  void watch(Listener& l);
  void pause();

  uv_loop_t* loop_;
  OnAccept on_accept_;
  OnPause on_pause_;
  // Handles live as long as this (the worker), past the loop's closing of them.
  std::vector<std::unique_ptr<Listener>> listeners_;
  uv_timer_t retry_;
  bool paused_ = false;
  bool closed_ = false;
};

}  // namespace rend::worker
