#include "loadgen/engine.h"

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

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string resolve_target(const Options& options, Target& out) {
  out = Target{};
  if (!options.unix_path.empty()) {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (options.unix_path.size() >= sizeof un.sun_path) return "unix socket path too long: " + options.unix_path;
    std::memcpy(un.sun_path, options.unix_path.data(), options.unix_path.size());
    std::memcpy(&out.address, &un, sizeof un);
    out.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + options.unix_path.size() + 1);
    out.tcp = false;
    out.name = "unix:" + options.unix_path;
    return {};
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const std::string port = std::to_string(options.port);
  const int rc = getaddrinfo(options.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) return fmt::format("cannot resolve {}: {}", options.host, gai_strerror(rc));
  std::memcpy(&out.address, result->ai_addr, result->ai_addrlen);
  out.length = result->ai_addrlen;
  freeaddrinfo(result);
  out.tcp = true;
  out.name = options.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", options.host, options.port)
                                                         : fmt::format("{}:{}", options.host, options.port);
  return {};
}

std::string printable(std::string_view bytes, size_t limit) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (bytes.size() > limit) out += "...";
  return out;
}

Worker::Worker(const Options& options, const Target& target, const KeyFormat& keys, const ValueModel& values,
               std::vector<uint64_t> connection_ids, uint64_t total_connections)
    : options_(options), target_(target), keys_(keys), values_(values), total_connections_(total_connections) {
  connections_.reserve(connection_ids.size());
  for (uint64_t id : connection_ids) {
    auto c = std::make_unique<Connection>();
    c->id = id;
    c->slot = connections_.size();
    c->wbuf.reserve(4096);
    c->sending.reserve(4096);
    connections_.push_back(std::move(c));
  }
  dirty_.reserve(connections_.size());
}

// No ring exists here (connect_all() and run() close theirs), so no operation is in flight.
Worker::~Worker() {
  for (auto& c : connections_) close_socket(*c);
}

void Worker::reset_stats() {
  for (auto& command : stats_.commands) {
    command.latency.clear();
    command.ops = command.keys = command.hits = 0;
  }
  stats_.latency.clear();
  stats_.send_lag.clear();
  stats_.ops = stats_.aborted = stats_.unsent = stats_.unjudged = stats_.errors_total = 0;
  stats_.errors.fill(0);
  stats_.samples.clear();
  stats_.begin_ns = stats_.end_ns = 0;
  progress_ops_.store(0, std::memory_order_relaxed);
  progress_errors_.store(0, std::memory_order_relaxed);
}

size_t Worker::connected() const {
  return static_cast<size_t>(std::count_if(connections_.begin(), connections_.end(),
                                           [](const auto& c) { return c->state == ConnState::kReady; }));
}

std::string Worker::key_text(uint64_t key) const {
  std::string s(keys_.length(), ' ');
  keys_.write(key, s.data());
  return s;
}

// ---- the ring ---------------------------------------------------------------------------------

bool Worker::open_ring() {
  const auto wanted = static_cast<unsigned>(std::min<size_t>(3 * connections_.size() + 16, kMaxRingEntries));
  const unsigned entries = std::bit_ceil(std::max(wanted, kMinRingEntries));
  auto ring = std::make_unique<IoRing>();
  io_uring_params params{};
  // Completions are then run only when this thread waits for them, in one batch per wait, instead
  // of interrupting it whenever a reply arrives (Linux 6.1).
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(entries, &ring->ring, &params);
  if (rc == -EINVAL) {
    params = io_uring_params{};
    rc = io_uring_queue_init_params(entries, &ring->ring, &params);
  }
  if (rc < 0) {
    stats_.add_error(ErrorKind::kConnection, fmt::format("cannot create an io_uring: {}", std::strerror(-rc)));
    for (auto& c : connections_) c->state = ConnState::kDead;
    return false;
  }
  ring_ = std::move(ring);
  sends_queued_ = 0;
  return true;
}

void Worker::close_ring() {
  if (!ring_) return;
  // Whatever is still in flight (a recv armed on each idle connection, a reconnect) is cancelled,
  // and waited for: until it completes the kernel may still write into a connection's buffer.
  if (ops_in_flight_ > 0) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, io_tag(0, kNone));
  }
  while (ops_in_flight_ > 0 && submit_and_wait(kHousekeepingNs)) reap(now_ns());
  io_uring_queue_exit(&ring_->ring);
  ring_.reset();
}

io_uring_sqe* Worker::next_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  if (sqe == nullptr) {  // the submission queue is full: hand it to the kernel now
    io_uring_submit(&ring_->ring);
    sqe = io_uring_get_sqe(&ring_->ring);
  }
  return sqe;
}

// One system call per loop turn: it submits the queued sends and recvs and waits. Sends almost
// always complete during the submission (the socket has room), and their completions would end
// the wait at once; waiting for one completion more than the sends queued waits for a reply
// instead. Should a send have to wait for room, its completion ends the wait or the timeout does,
// which costs a loop turn and nothing else.
bool Worker::submit_and_wait(int64_t timeout_ns) {
  __kernel_timespec timeout{};
  timeout.tv_sec = timeout_ns / 1'000'000'000;
  timeout.tv_nsec = timeout_ns % 1'000'000'000;
  io_uring_cqe* cqe = nullptr;
  const int rc = io_uring_submit_and_wait_timeout(&ring_->ring, &cqe, sends_queued_ + 1, &timeout, nullptr);
  sends_queued_ = 0;
  if (rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY) return true;
  // The ring itself refuses: nothing in flight will ever complete, so give every connection up
  // rather than wait for it.
  stats_.add_error(ErrorKind::kConnection, fmt::format("io_uring_enter: {}", std::strerror(-rc)));
  for (auto& c : connections_) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = ConnState::kDead;
    if (running_) check_finished(*c);
  }
  return false;
}

void Worker::reap(int64_t now) {
  io_uring_cqe* cqes[kReapBatch];
  unsigned count;
  while ((count = io_uring_peek_batch_cqe(&ring_->ring, cqes, kReapBatch)) > 0) {
    for (unsigned i = 0; i < count; ++i) {
      const uint64_t tag = io_uring_cqe_get_data64(cqes[i]);
      const auto op = static_cast<IoOp>(tag & 0xff);
      if (op == kNone) continue;
      --ops_in_flight_;
      Connection& c = *connections_[tag >> 8];
      const int result = cqes[i]->res;
      switch (op) {
        case kConnectOp: on_connect_done(c, result, now); break;
        case kSendOp: on_sent(c, result, now); break;
        case kRecvOp: on_received(c, result, now); break;
        case kNone: break;
      }
    }
    io_uring_cq_advance(&ring_->ring, count);
  }
}

}  // namespace rend::loadgen
