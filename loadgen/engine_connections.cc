// rend-loadgen engine: opening, failing and reconnecting connections.
#include "loadgen/engine_internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/core.h>
#include <liburing.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

#include "common/protocol/binary_format.h"
#include "common/protocol/request_compose.h"
#include "common/protocol/response_parser.h"

namespace rend::loadgen {

using proto::Protocol;
using proto::ResponseParse;
using proto::TextReply;
using proto::TextReplyKind;

// ---- connections ------------------------------------------------------------------------------

void Worker::close_socket(Connection& c) {
  if (c.fd >= 0) {
    if (c.busy()) {
      // Closing the descriptor would not end the socket's operations (they hold the socket), and
      // the number may be reused at once: cancel them by descriptor first. Their completions
      // arrive later and find the connection no longer ready.
      io_uring_sqe* sqe = next_sqe();
      io_uring_prep_cancel_fd(sqe, c.fd, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, io_tag(0, kNone));
      io_uring_submit(&ring_->ring);
    }
    close(c.fd);
  }
  c.fd = -1;
  c.rbegin = c.rend = 0;
  c.wbuf.clear();
  if (!c.sending_now) {
    c.sending.clear();
    c.sent = 0;
  }
}

void Worker::start_connect(Connection& c, int64_t now) {
  close_socket(c);
  const int family = reinterpret_cast<const sockaddr*>(&target_.address)->sa_family;
  // A blocking socket: io_uring never blocks on it (it tries without waiting, then polls).
  c.fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    connect_failed(c, errno, now);
    return;
  }
  if (target_.tcp) {
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  c.connect_started_ns = now;
  c.state = ConnState::kConnecting;
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_connect(sqe, c.fd, reinterpret_cast<const sockaddr*>(&target_.address), target_.length);
  io_uring_sqe_set_data64(sqe, io_tag(c.slot, kConnectOp));
  c.connecting = true;
  ++ops_in_flight_;
}

void Worker::on_connect_done(Connection& c, int result, int64_t now) {
  c.connecting = false;
  if (c.state != ConnState::kConnecting) return;  // given up on (timed out) meanwhile
  if (result == -ECANCELED) {
    // close_ring() cancelled it at the end of a run: not a failure, the next connect_all() retries.
    close_socket(c);
    c.state = ConnState::kBackoff;
    return;
  }
  if (result < 0) {
    connect_failed(c, -result, now);
    return;
  }
  on_connected(c, now);
}

void Worker::on_connected(Connection& c, int64_t now) {
  c.state = ConnState::kReady;
  c.failures = 0;
  if (running_) {
    arm_recv(c);
    issue(c, now);
    check_finished(c);
  }
}

void Worker::connect_failed(Connection& c, int error, int64_t now) {
  stats_.add_error(ErrorKind::kConnection,
                   fmt::format("connection {}: connect to {}: {}", c.id, target_.name, std::strerror(error)));
  close_socket(c);
  ++c.failures;
  if (c.failures >= kMaxConnectFailures) {
    c.state = ConnState::kDead;
  } else {
    c.state = ConnState::kBackoff;
    c.retry_at_ns = now + kReconnectDelayNs * c.failures;
  }
  if (running_) check_finished(c);
}

void Worker::fail(Connection& c, ErrorKind kind, std::string why, int64_t now) {
  stats_.add_error(kind, fmt::format("connection {}: {}", c.id, why));
  stats_.aborted += c.inflight.size();
  c.inflight.clear();
  close_socket(c);
  // The lost requests may or may not have been executed: continue from a point that does not
  // depend on them, on a new connection.
  if (plan_ != nullptr) plan_->workload->restart(c.cursor);
  c.state = ConnState::kBackoff;
  c.retry_at_ns = now + kReconnectDelayNs;
  if (running_) check_finished(c);
}

void Worker::connect_all(int64_t deadline_ns) {
  if (!open_ring()) return;
  int64_t now = now_ns();
  for (auto& c : connections_) {
    if (c->state == ConnState::kIdle || c->state == ConnState::kBackoff) start_connect(*c, now);
  }
  while (true) {
    const bool pending = std::any_of(connections_.begin(), connections_.end(),
                                     [](const auto& c) { return c->state == ConnState::kConnecting; });
    now = now_ns();
    if (!pending) break;
    if (now >= deadline_ns) {
      for (auto& c : connections_) {
        if (c->state == ConnState::kConnecting) connect_failed(*c, ETIMEDOUT, now);
      }
      break;
    }
    if (!submit_and_wait(std::min<int64_t>(deadline_ns - now, 100'000'000))) break;
    reap(now_ns());
  }
  close_ring();
}

}  // namespace rend::loadgen
