// Moving a client connection from a worker that is going away to one that stays, without the
// client noticing: its socket (SCM_RIGHTS) and the bytes already read from it but not yet parsed
// travel over a SOCK_SEQPACKET pair the supervisor made for the two workers.
//
// The draining worker hands a connection over only at a request boundary: every request it parsed
// has been answered and the replies written to the socket. What it read and did not parse (a
// partial request, or a pipelined burst it had not reached) goes along, and what the client sent
// since is still in the socket's kernel buffer, so the new worker goes on exactly where the old
// one stopped: nothing is lost, reordered or answered twice.
//
// Wire format, per connection: one message with a HandoffHeader, the socket attached and the first
// bytes of the unparsed input; then as many plain messages as the rest of the input needs.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "common/protocol/request.h"
#include "worker/tiered.h"

namespace rend::worker {

// What a connection carries from one worker to the next.
struct HandedConnection {
  int fd = -1;
  bool tcp = true;
  TierMode mode = TierMode::kL1Only;
  bool protocol_known = false;
  proto::Protocol protocol = proto::Protocol::kText;
  uint64_t swallow = 0;  // bytes of an over-large value still to be discarded
  std::string unparsed;
};

// The sending end: queues connections and writes them as the channel takes them (a non-blocking
// socket; the receiver may be busy). Each queued connection holds its own descriptor until sent.
class HandoffSender {
 public:
  HandoffSender(uv_loop_t* loop, int channel_fd);
  HandoffSender(const HandoffSender&) = delete;
  HandoffSender& operator=(const HandoffSender&) = delete;
  ~HandoffSender();

  void send(HandedConnection c);
  // Everything queued has been sent (or lost with a broken channel).
  bool idle() const { return queue_.empty(); }
  // Closes the channel once idle: the receiver sees its end, and stops expecting connections.
  void finish();
  // Connections that could not be sent (the receiving worker went away): closed instead.
  uint64_t lost() const { return lost_; }

 private:
  struct Message {
    std::string data;
    int fd = -1;  // attached to this message; closed here once sent
  };
  void pump();
  void fail_all();

  uv_loop_t* loop_;
  int fd_;
  uv_poll_t poll_;
  bool polling_ = false;
  bool closed_ = false;
  std::deque<Message> queue_;
  uint64_t lost_ = 0;
};

// The receiving end: reads connections as they come and passes each, complete, to `on_connection`;
// `on_end` once the sender has closed its end (or the channel broke).
class HandoffReceiver {
 public:
  using OnConnection = std::function<void(HandedConnection)>;
  using OnEnd = std::function<void()>;
  HandoffReceiver(uv_loop_t* loop, int channel_fd, OnConnection on_connection, OnEnd on_end);
  HandoffReceiver(const HandoffReceiver&) = delete;
  HandoffReceiver& operator=(const HandoffReceiver&) = delete;
  ~HandoffReceiver();
  bool open() const { return !closed_; }

 private:
  void on_readable();
  void end();
  // One message: a header, or the next part of the current connection's input.
  bool take(const char* data, size_t n, int fd);

  uv_loop_t* loop_;
  int fd_;
  uv_poll_t poll_;
  bool closed_ = false;
  OnConnection on_connection_;
  OnEnd on_end_;
  HandedConnection current_;
  size_t remaining_ = 0;  // input bytes of current_ still to come
  bool in_progress_ = false;
  bool fd_lost_ = false;  // the current connection's socket did not arrive (out of descriptors)
};

}  // namespace rend::worker
