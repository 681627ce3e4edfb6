#include "loadgen/engine.h"

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

namespace {

constexpr size_t kInitialReadBuffer = 16 * 1024;
constexpr size_t kMinRead = 4096;
// Bound on any reply body the parsers accept: larger is a corrupt stream, not a reason to buffer.
constexpr size_t kMaxReplyBody = kMaxValueSize + 4096;
constexpr int kMaxConnectFailures = 3;
constexpr int64_t kHousekeepingNs = 10'000'000;
constexpr int64_t kReconnectDelayNs = 100'000'000;
constexpr uint64_t kNoKey = UINT64_MAX;
// Ring sizes: a connection has at most a connect or a send and a recv in flight, plus a cancel.
constexpr unsigned kMinRingEntries = 64;
constexpr unsigned kMaxRingEntries = 4096;  // beyond, a full submission queue is submitted early
constexpr unsigned kReapBatch = 64;

// What a completion is for: user_data = connection slot << 8 | IoOp. kNone (cancels) is ignored.
enum IoOp : uint8_t { kNone = 0, kConnectOp, kSendOp, kRecvOp };
uint64_t io_tag(size_t slot, IoOp op) { return (uint64_t{slot} << 8) | op; }

std::string printable(std::string_view bytes, size_t limit = 48) {
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

}  // namespace

struct IoRing {
  io_uring ring{};
};

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

// One request in flight.
struct Pending {
  Op op;
  int64_t start_ns = 0;  // the latency clock's start (the intended send time in an open loop)
  int64_t sent_ns = 0;   // when it was composed (for --timeout)
  uint32_t opaque = 0;   // binary: the reply's opaque (a multi-get's NOOP)
  uint32_t first_opaque = 0;  // binary multi-get: GETKQ i carries first_opaque + i
  uint8_t opcode = 0;         // binary: the opcode sent (the reply echoes it)
  uint8_t cursor = 0;         // reads: the first key position a value may still be for
  uint8_t hits = 0;
  bool error_reply = false;   // binary multi-get: some key got an error status
};

// A fixed-capacity FIFO of requests in flight, sized once per phase (the pipeline depth).
class Ring {
 public:
  void reset(size_t capacity) {
    if (slots_.size() < capacity) slots_.resize(capacity);
    capacity_ = capacity;
    head_ = count_ = 0;
  }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  bool full() const { return count_ == capacity_; }
  Pending& front() { return slots_[head_]; }
  Pending& push() {
    Pending& p = slots_[(head_ + count_) % capacity_];
    ++count_;
    return p;
  }
  void pop() {
    head_ = (head_ + 1) % capacity_;
    --count_;
  }
  void clear() { head_ = count_ = 0; }
  void drop_last() { --count_; }  // undoes the last push()
  template <typename Fn>
  void for_each(Fn&& fn) {
    for (size_t i = 0; i < count_; ++i) fn(slots_[(head_ + i) % capacity_]);
  }

 private:
  std::vector<Pending> slots_;
  size_t capacity_ = 1;
  size_t head_ = 0, count_ = 0;
};

enum class ConnState : uint8_t { kIdle, kConnecting, kReady, kBackoff, kDead };

class Connection {
 public:
  uint64_t id = 0;
  size_t slot = 0;  // index in the worker's connections (completions carry it)
  int fd = -1;
  ConnState state = ConnState::kIdle;
  int failures = 0;     // consecutive failed connects
  int64_t connect_started_ns = 0;
  int64_t retry_at_ns = 0;

  // Operations in flight in the ring. The kernel may use the socket and the buffers (rbuf from
  // rend, sending from sent) until each completes, so a new socket waits until none is.
  bool connecting = false, receiving = false, sending_now = false;
  bool busy() const { return connecting || receiving || sending_now; }

  std::vector<char> rbuf = std::vector<char>(kInitialReadBuffer);
  size_t rbegin = 0, rend = 0;
  std::string wbuf;     // requests composed since the last send was queued
  std::string sending;  // the bytes of the send in flight (or left over from a short one)
  size_t sent = 0;      // how much of `sending` the kernel has taken
  bool dirty = false;

  Ring inflight;
  Cursor cursor;
  Rng rng;
  uint64_t quota = 0;  // requests it may still send (UINT64_MAX: no limit)
  bool exhausted = false;
  bool finished = false;
  // Open loop: request k is due at due_base_ns + k * interval_ns.
  int64_t due_base_ns = 0;
  double interval_ns = 0;
  uint64_t scheduled = 0;
  int64_t next_due_ns = 0;
  uint32_t next_opaque = 1;
  // The key of this connection's last store that failed (kNoKey: none). memcached may keep the
  // old value after a failed set ("SERVER_ERROR out of memory"), so what a read of it returns
  // cannot be judged until a store of it succeeds again; the failure itself is the error.
  uint64_t doubtful_key = kNoKey;

  // Key bytes of the request being composed (a text multi-get: every key, space separated).
  char keys_scratch[kMaxMultiGet * (proto::kMaxKeyLength + 1)];
};

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

// ---- sending ----------------------------------------------------------------------------------

void Worker::mark_dirty(Connection& c) {
  if (c.dirty) return;
  c.dirty = true;
  dirty_.push_back(&c);
}

// Sends as many requests as the connection may now: up to the pipeline depth in a closed loop,
// those that are due in an open loop.
void Worker::issue(Connection& c, int64_t now) {
  if (c.state != ConnState::kReady || c.exhausted) return;
  const PhasePlan& plan = *plan_;
  while (!c.inflight.full()) {
    int64_t start = now;
    if (open_loop_) {
      if (c.next_due_ns > now) break;
      start = c.next_due_ns;
    } else if (stopped_) {
      c.exhausted = true;
      break;
    }
    if (c.quota == 0) {
      c.exhausted = true;
      break;
    }
    Pending& p = c.inflight.push();
    p.op = Op{};
    if (!plan.workload->next(c.cursor, c.rng, p.op)) {
      // Take the slot back: it was never sent.
      c.inflight.drop_last();
      c.exhausted = true;
      break;
    }
    if (c.quota != UINT64_MAX) --c.quota;
    p.start_ns = start;
    p.sent_ns = now;
    if (open_loop_) stats_.send_lag.record(static_cast<uint64_t>(now - start));
    p.cursor = 0;
    p.hits = 0;
    p.error_reply = false;
    compose(c, p);
    mark_dirty(c);
    if (open_loop_) {
      ++c.scheduled;
      c.next_due_ns = c.due_base_ns + static_cast<int64_t>(static_cast<double>(c.scheduled) * c.interval_ns);
      if (plan.end_ns != 0 && c.next_due_ns >= plan.end_ns) {
        c.exhausted = true;
        break;
      }
    }
    if (c.quota == 0) {
      c.exhausted = true;
      break;
    }
  }
  if (open_loop_ && !c.exhausted && !c.inflight.full()) earliest_due_ = std::min(earliest_due_, c.next_due_ns);
}

void Worker::compose(Connection& c, Pending& p) {
  const Op& op = p.op;
  proto::Request r;
  const size_t key_length = keys_.length();
  char* scratch = c.keys_scratch;
  keys_.write(op.keys[0], scratch);
  const std::string_view key(scratch, key_length);
  r.key = key;
  r.value = op.value;
  r.flags = op.flags;
  r.exptime = op.exptime;
  r.delta = op.delta;
  switch (op.kind) {
    case OpKind::kGet: r.command = proto::Command::kGet; break;
    case OpKind::kMultiGet: r.command = proto::Command::kGet; break;
    case OpKind::kGat: r.command = proto::Command::kGat; break;
    case OpKind::kSet: r.command = proto::Command::kSet; break;
    case OpKind::kAdd: r.command = proto::Command::kAdd; break;
    case OpKind::kReplace: r.command = proto::Command::kReplace; break;
    case OpKind::kAppend: r.command = proto::Command::kAppend; break;
    case OpKind::kPrepend: r.command = proto::Command::kPrepend; break;
    case OpKind::kDelete: r.command = proto::Command::kDelete; break;
    case OpKind::kTouch: r.command = proto::Command::kTouch; break;
    case OpKind::kIncr: r.command = proto::Command::kIncr; break;
    case OpKind::kDecr: r.command = proto::Command::kDecr; break;
  }

  if (options_.protocol == Protocol::kText) {
    r.protocol = Protocol::kText;
    if (op.kind == OpKind::kMultiGet) {
      size_t at = key_length;
      for (unsigned i = 1; i < op.nkeys; ++i) {
        scratch[at++] = ' ';
        keys_.write(op.keys[i], scratch + at);
        at += key_length;
      }
      r.keys = std::string_view(scratch, at);
    } else {
      r.keys = key;
    }
    proto::compose_text_request(r, c.wbuf);
    return;
  }

  r.protocol = Protocol::kBinary;
  if (op.kind == OpKind::kMultiGet) {
    // GETKQ per key (hits only come back, each with its key) and a NOOP that ends the batch.
    p.first_opaque = c.next_opaque;
    r.quiet = true;
    r.return_key = true;
    for (unsigned i = 0; i < op.nkeys; ++i) {
      keys_.write(op.keys[i], scratch);
      r.key = key;
      r.opaque = c.next_opaque++;
      proto::compose_binary_request(r, c.wbuf);
    }
    proto::Request noop;
    noop.protocol = Protocol::kBinary;
    noop.command = proto::Command::kNoop;
    noop.opaque = p.opaque = c.next_opaque++;
    p.opcode = proto::bin::kNoop;
    proto::compose_binary_request(noop, c.wbuf);
    return;
  }
  if (op.kind == OpKind::kIncr || op.kind == OpKind::kDecr) {
    r.initial = 0;
    r.create_exptime = 0xffffffff;  // a miss stays a miss, as in text
  }
  r.opaque = p.opaque = c.next_opaque++;
  p.opcode = proto::binary_opcode_for(r.command, false, false);
  proto::compose_binary_request(r, c.wbuf);
}

// At most one send per connection in flight: everything composed since the last one goes out with
// the next, queued here (at the end of a loop turn) and submitted by the turn's wait.
void Worker::flush(Connection& c) {
  if (c.state != ConnState::kReady || c.sending_now) return;
  if (c.sent == c.sending.size()) {
    c.sending.clear();
    c.sent = 0;
    std::swap(c.sending, c.wbuf);
  }
  if (c.sending.empty()) return;
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_send(sqe, c.fd, c.sending.data() + c.sent, c.sending.size() - c.sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, io_tag(c.slot, kSendOp));
  c.sending_now = true;
  ++ops_in_flight_;
  ++sends_queued_;
}

void Worker::on_sent(Connection& c, int result, int64_t now) {
  c.sending_now = false;
  if (c.state != ConnState::kReady) {  // failed meanwhile: the bytes are moot
    c.sending.clear();
    c.sent = 0;
    return;
  }
  if (result < 0) {
    fail(c, ErrorKind::kConnection, fmt::format("send: {}", std::strerror(-result)), now);
    return;
  }
  c.sent += static_cast<size_t>(result);
  // The rest of a short send, or what was composed meanwhile.
  if (c.sent < c.sending.size() || !c.wbuf.empty()) mark_dirty(c);
}

// ---- receiving --------------------------------------------------------------------------------

// One recv in flight per ready connection while a phase runs, into the free end of its buffer.
void Worker::arm_recv(Connection& c) {
  if (c.receiving) return;
  if (c.rbuf.size() - c.rend < kMinRead) {
    if (c.rbegin > 0) {
      std::memmove(c.rbuf.data(), c.rbuf.data() + c.rbegin, c.rend - c.rbegin);
      c.rend -= c.rbegin;
      c.rbegin = 0;
    }
    if (c.rbuf.size() - c.rend < kMinRead) c.rbuf.resize(c.rbuf.size() * 2);
  }
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_recv(sqe, c.fd, c.rbuf.data() + c.rend, c.rbuf.size() - c.rend, 0);
  // The reply to what was just sent is rarely there yet: wait for data before trying to read.
  sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
  io_uring_sqe_set_data64(sqe, io_tag(c.slot, kRecvOp));
  c.receiving = true;
  ++ops_in_flight_;
}

void Worker::on_received(Connection& c, int result, int64_t now) {
  c.receiving = false;
  if (c.state != ConnState::kReady || result == -ECANCELED) return;
  if (result == 0) {
    fail(c, ErrorKind::kConnection,
         c.inflight.empty() ? "closed by the server" : "closed by the server with requests in flight", now);
    return;
  }
  if (result < 0) {
    if (result == -EINTR || result == -EAGAIN) {
      if (running_) arm_recv(c);
      return;
    }
    fail(c, ErrorKind::kConnection, fmt::format("recv: {}", std::strerror(-result)), now);
    return;
  }
  c.rend += static_cast<size_t>(result);

  const bool text = options_.protocol == Protocol::kText;
  while (c.rbegin < c.rend) {
    const std::span<const char> input(c.rbuf.data() + c.rbegin, c.rend - c.rbegin);
    if (c.inflight.empty()) {
      fail(c, ErrorKind::kProtocol, fmt::format("reply with no request outstanding: '{}'", printable(std::string_view(input.data(), input.size()))), now);
      return;
    }
    size_t consumed = 0;
    ResponseParse parsed;
    bool ok;
    if (text) {
      TextReply reply;
      parsed = proto::parse_text_response(input, kMaxReplyBody, reply, consumed);
      if (parsed != ResponseParse::kOk) {
        if (parsed == ResponseParse::kNeedMore) break;
        fail(c, ErrorKind::kProtocol, fmt::format("unparseable reply: '{}'", printable(std::string_view(input.data(), input.size()))), now);
        return;
      }
      ok = on_text_reply(c, reply, now);
    } else {
      proto::BinaryResponse reply;
      parsed = proto::parse_binary_response(input, kMaxReplyBody, reply, consumed);
      if (parsed != ResponseParse::kOk) {
        if (parsed == ResponseParse::kNeedMore) break;
        fail(c, ErrorKind::kProtocol, fmt::format("unparseable reply: '{}'", printable(std::string_view(input.data(), input.size()))), now);
        return;
      }
      ok = on_binary_reply(c, reply, now);
    }
    if (!ok) return;  // the connection failed (and was reset)
    c.rbegin += consumed;
  }
  if (c.rbegin == c.rend) c.rbegin = c.rend = 0;
  if (running_) {
    arm_recv(c);
    issue(c, now);
    check_finished(c);
  }
}

namespace {

// The outcome a text reply line means for a non-read command, or false if that command cannot
// get that reply (which then is a protocol error).
bool text_outcome(OpKind kind, const TextReply& r, Outcome& out) {
  const bool incr = kind == OpKind::kIncr || kind == OpKind::kDecr;
  switch (r.kind) {
    case TextReplyKind::kStored: out = Outcome::kStored; return is_store(kind);
    case TextReplyKind::kNotStored: out = Outcome::kNotStored; return is_store(kind);
    case TextReplyKind::kExists: out = Outcome::kExists; return is_store(kind);
    case TextReplyKind::kNotFound: out = Outcome::kNotFound; return !is_read(kind);
    case TextReplyKind::kDeleted: out = Outcome::kDeleted; return kind == OpKind::kDelete;
    case TextReplyKind::kTouched: out = Outcome::kTouched; return kind == OpKind::kTouch;
    case TextReplyKind::kNumber: out = Outcome::kNumber; return incr;
    case TextReplyKind::kClientError:
      out = incr && r.message == "cannot increment or decrement non-numeric value" ? Outcome::kNonNumeric
                                                                                  : Outcome::kErrorReply;
      return true;
    case TextReplyKind::kServerError:
      out = is_store(kind) && r.message == "object too large for cache" ? Outcome::kTooLarge : Outcome::kErrorReply;
      return true;
    case TextReplyKind::kError: out = Outcome::kErrorReply; return true;
    default: return false;
  }
}

Outcome read_outcome(const Pending& p) {
  if (p.error_reply) return Outcome::kErrorReply;
  if (p.hits == 0) return Outcome::kMiss;
  return p.hits >= p.op.nkeys ? Outcome::kHit : Outcome::kPartial;
}

}  // namespace

bool Worker::on_text_reply(Connection& c, const TextReply& r, int64_t now) {
  Pending& p = c.inflight.front();
  if (is_read(p.op.kind)) {
    switch (r.kind) {
      case TextReplyKind::kValue: {
        char expected[proto::kMaxKeyLength];
        size_t pos = p.cursor;
        for (; pos < p.op.nkeys; ++pos) {
          keys_.write(p.op.keys[pos], expected);
          if (r.key == std::string_view(expected, keys_.length())) break;
        }
        if (pos >= p.op.nkeys) {
          fail(c, ErrorKind::kProtocol,
               fmt::format("{} {}: VALUE for key '{}', not asked for (or out of order)", op_name(p.op.kind),
                           key_text(p.op.keys[0]), printable(r.key)),
               now);
          return false;
        }
        p.cursor = static_cast<uint8_t>(pos + 1);
        ++p.hits;
        verify(c, p, p.op.keys[pos], r.flags, r.data);
        return true;
      }
      case TextReplyKind::kEnd:
        complete(c, read_outcome(p), now);
        return true;
      case TextReplyKind::kError:
      case TextReplyKind::kClientError:
      case TextReplyKind::kServerError:
        complete(c, Outcome::kErrorReply, now, fmt::format(" ({} {})", text_reply_name(r.kind), r.message));
        return true;
      default:
        fail(c, ErrorKind::kProtocol,
             fmt::format("{} {}: answered with {}", op_name(p.op.kind), key_text(p.op.keys[0]), text_reply_name(r.kind)),
             now);
        return false;
    }
  }
  Outcome outcome;
  if (!text_outcome(p.op.kind, r, outcome)) {
    fail(c, ErrorKind::kProtocol,
         fmt::format("{} {}: answered with {}", op_name(p.op.kind), key_text(p.op.keys[0]), text_reply_name(r.kind)),
         now);
    return false;
  }
  if (outcome == Outcome::kErrorReply || outcome == Outcome::kTooLarge) {
    complete(c, outcome, now, fmt::format(" ({} {})", text_reply_name(r.kind), r.message));
  } else {
    complete(c, outcome, now);
  }
  return true;
}

bool Worker::on_binary_reply(Connection& c, const proto::BinaryResponse& r, int64_t now) {
  Pending& p = c.inflight.front();
  const uint16_t status = r.status();
  auto protocol_error = [&](std::string_view what) {
    fail(c, ErrorKind::kProtocol,
         fmt::format("{} {}: {} (reply opcode 0x{:02x} opaque {} status 0x{:04x}; expected opcode 0x{:02x} opaque {})",
                     op_name(p.op.kind), key_text(p.op.keys[0]), what, r.header.opcode, r.header.opaque, status,
                     p.opcode, p.opaque),
         now);
    return false;
  };
  auto detail = [&] { return fmt::format(" (status 0x{:04x} '{}')", status, printable(r.value)); };

  if (p.op.kind == OpKind::kMultiGet) {
    if (r.header.opaque == p.opaque) {
      if (r.header.opcode != proto::bin::kNoop || status != 0) return protocol_error("bad end of multi-get");
      const Outcome outcome = read_outcome(p);
      complete(c, outcome, now, outcome == Outcome::kErrorReply ? " (an error status for a key)" : "");
      return true;
    }
    const uint32_t pos = r.header.opaque - p.first_opaque;
    if (pos >= p.op.nkeys || pos < p.cursor) return protocol_error("opaque of no outstanding key");
    if (r.header.opcode != proto::bin::kGetKQ) return protocol_error("wrong opcode in multi-get");
    p.cursor = static_cast<uint8_t>(pos + 1);
    if (status == proto::bin::kSuccess) {
      char expected[proto::kMaxKeyLength];
      keys_.write(p.op.keys[pos], expected);
      if (r.key != std::string_view(expected, keys_.length())) return protocol_error("wrong key in GETKQ reply");
      if (r.extras.size() != 4) return protocol_error("GETKQ hit without 4 bytes of flags");
      ++p.hits;
      verify(c, p, p.op.keys[pos], proto::bin::load32(r.extras.data()), r.value);
    } else if (status != proto::bin::kKeyNotFound) {
      p.error_reply = true;
    }
    return true;
  }

  if (r.header.opaque != p.opaque || r.header.opcode != p.opcode) return protocol_error("reply for another request");
  Outcome outcome = Outcome::kErrorReply;
  switch (p.op.kind) {
    case OpKind::kGet:
    case OpKind::kGat:
      if (status == proto::bin::kSuccess) {
        if (r.extras.size() != 4) return protocol_error("hit without 4 bytes of flags");
        p.hits = 1;
        verify(c, p, p.op.keys[0], proto::bin::load32(r.extras.data()), r.value);
        outcome = Outcome::kHit;
      } else if (status == proto::bin::kKeyNotFound) {
        outcome = Outcome::kMiss;
      }
      break;
    case OpKind::kSet:
    case OpKind::kAdd:
    case OpKind::kReplace:
    case OpKind::kAppend:
    case OpKind::kPrepend:
      switch (status) {
        case proto::bin::kSuccess: outcome = Outcome::kStored; break;
        case proto::bin::kKeyNotFound: outcome = Outcome::kNotFound; break;
        case proto::bin::kKeyExists: outcome = Outcome::kExists; break;
        case proto::bin::kNotStored: outcome = Outcome::kNotStored; break;
        case proto::bin::kTooLarge: outcome = Outcome::kTooLarge; break;
        default: break;
      }
      break;
    case OpKind::kDelete:
      if (status == proto::bin::kSuccess) outcome = Outcome::kDeleted;
      if (status == proto::bin::kKeyNotFound) outcome = Outcome::kNotFound;
      break;
    case OpKind::kTouch:
      if (status == proto::bin::kSuccess) outcome = Outcome::kTouched;
      if (status == proto::bin::kKeyNotFound) outcome = Outcome::kNotFound;
      break;
    case OpKind::kIncr:
    case OpKind::kDecr:
      if (status == proto::bin::kSuccess) {
        if (r.value.size() != 8) return protocol_error("incr/decr reply without an 8-byte value");
        outcome = Outcome::kNumber;
      }
      if (status == proto::bin::kKeyNotFound) outcome = Outcome::kNotFound;
      if (status == proto::bin::kDeltaBadValue) outcome = Outcome::kNonNumeric;
      break;
    case OpKind::kMultiGet:
      break;
  }
  if (outcome == Outcome::kErrorReply || outcome == Outcome::kTooLarge) {
    complete(c, outcome, now, detail());
  } else {
    complete(c, outcome, now);
  }
  return true;
}

void Worker::verify(Connection& c, Pending& p, uint64_t key, uint32_t flags, std::string_view data) {
  const Op& op = p.op;
  if (op.check == Check::kNone || key == c.doubtful_key) return;
  auto wrong = [&](std::string what) {
    stats_.add_error(ErrorKind::kWrongValue,
                     fmt::format("connection {}: {} {}: {}", c.id, op_name(op.kind), key_text(key), what));
  };
  const uint32_t expected_flags = ValueModel::flags(key);
  if (flags != expected_flags) {
    wrong(fmt::format("flags {}, expected {}", flags, expected_flags));
    return;
  }
  auto first_difference = [](std::string_view got, std::string_view want) {
    size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
    return i;
  };
  if (op.check == Check::kKeyed) {
    if (data.size() < op.size_min || data.size() > op.size_max) {
      wrong(fmt::format("{} bytes, expected {}..{}", data.size(), op.size_min, op.size_max));
      return;
    }
    const std::string_view want = values_.value(key, 0, data.size());
    if (std::memcmp(want.data(), data.data(), data.size()) != 0) {
      wrong(fmt::format("{} bytes differ from what was written, from byte {}", data.size(),
                        first_difference(data, want)));
    }
    return;
  }
  if (op.check == Check::kExact) {
    size_t total = 0;
    for (unsigned i = 0; i < op.nsegments; ++i) total += op.segments[i].size;
    if (data.size() != total) {
      wrong(fmt::format("{} bytes, expected {}", data.size(), total));
      return;
    }
    size_t at = 0;
    for (unsigned i = 0; i < op.nsegments; ++i) {
      const Segment& s = op.segments[i];
      const std::string_view want = values_.value(s.key, s.version, s.size);
      if (std::memcmp(want.data(), data.data() + at, s.size) != 0) {
        wrong(fmt::format("{} bytes, wrong from byte {} (got '{}', expected '{}')", total,
                          at + first_difference(data.substr(at, s.size), want),
                          printable(data.substr(at + first_difference(data.substr(at, s.size), want), 8)),
                          printable(want.substr(first_difference(data.substr(at, s.size), want), 8))));
        return;
      }
      at += s.size;
    }
  }
}

void Worker::complete(Connection& c, Outcome outcome, int64_t now, std::string_view detail) {
  Pending& p = c.inflight.front();
  const auto latency = static_cast<uint64_t>(std::max<int64_t>(0, now - p.start_ns));
  CommandStats& command = stats_.commands[static_cast<size_t>(p.op.kind)];
  ++command.ops;
  command.latency.record(latency);
  if (is_read(p.op.kind)) {
    command.keys += p.op.nkeys;
    command.hits += p.hits;
  }
  stats_.latency.record(latency);
  ++stats_.ops;
  const uint64_t key = p.op.keys[0];
  const bool accepted = (p.op.accept & bit(outcome)) != 0;
  if (is_store(p.op.kind)) {
    if (!accepted) {
      c.doubtful_key = key;
    } else if (c.doubtful_key == key) {
      c.doubtful_key = kNoKey;
    }
  }
  if (is_read(p.op.kind) && p.op.nkeys == 1 && key == c.doubtful_key) {
    ++stats_.unjudged;
  } else if (!accepted) {
    stats_.add_error(ErrorKind::kUnexpectedStatus,
                     fmt::format("connection {}: {} {}: got {}{}, expected {}", c.id, op_name(p.op.kind),
                                 key_text(p.op.keys[0]), outcome_name(outcome), detail,
                                 outcome_set_names(p.op.accept)));
  }
  last_reply_ns_ = now;
  c.inflight.pop();
}

void Worker::check_finished(Connection& c) {
  if (c.finished) return;
  const bool idle = c.exhausted && c.inflight.empty();
  const bool gone = c.state == ConnState::kDead || (c.exhausted && c.state != ConnState::kReady);
  if (idle || gone) {
    c.finished = true;
    --active_;
  }
}

// ---- the loop ---------------------------------------------------------------------------------

void Worker::scan_due(int64_t now) {
  earliest_due_ = INT64_MAX;
  for (auto& c : connections_) {
    if (c->finished) continue;
    issue(*c, now);
    check_finished(*c);
  }
}

void Worker::housekeeping(int64_t now) {
  const auto timeout = static_cast<int64_t>(options_.timeout_ms) * 1'000'000;
  for (auto& cp : connections_) {
    Connection& c = *cp;
    if (c.finished) continue;
    switch (c.state) {
      case ConnState::kReady:
        if (!c.inflight.empty() && now - c.inflight.front().sent_ns > timeout) {
          const Pending& p = c.inflight.front();
          fail(c, ErrorKind::kTimeout,
               fmt::format("{} {}: no reply after {} ms", op_name(p.op.kind), key_text(p.op.keys[0]),
                           options_.timeout_ms),
               now);
        }
        break;
      case ConnState::kConnecting:
        if (now - c.connect_started_ns > timeout) connect_failed(c, ETIMEDOUT, now);
        break;
      case ConnState::kBackoff:
        // Not before the old socket's operations have completed: they may still use its buffers.
        if (now >= c.retry_at_ns && !c.busy()) start_connect(c, now);
        break;
      default:
        break;
    }
  }
}

void Worker::run(const PhasePlan& plan) {
  if (!open_ring()) return;
  // An open loop sleeps until exact send times; the default 50 us timer slack would make every
  // send that late.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  plan_ = &plan;
  open_loop_ = plan.rate > 0;
  stopped_ = false;
  earliest_due_ = INT64_MAX;
  last_reply_ns_ = plan.start_ns;
  stats_.begin_ns = plan.start_ns;
  const uint64_t n = total_connections_;
  active_ = connections_.size();
  for (auto& cp : connections_) {
    Connection& c = *cp;
    c.inflight.reset(plan.pipeline);
    plan.workload->start(c.cursor, c.id, n);
    c.rng = Rng(mix64(options_.seed ^ (c.id * 0x100000001b3ULL), plan.phase + 1));
    c.quota = plan.ops == 0 ? UINT64_MAX : plan.ops / n + (c.id < plan.ops % n ? 1 : 0);
    c.exhausted = c.quota == 0;
    c.finished = false;
    c.scheduled = 0;
    if (open_loop_) {
      c.interval_ns = 1e9 * static_cast<double>(n) / plan.rate;
      // Spread the connections' schedules evenly over one interval.
      c.due_base_ns = plan.start_ns + static_cast<int64_t>(c.interval_ns * static_cast<double>(c.id) / static_cast<double>(n));
      c.next_due_ns = c.due_base_ns;
      if (plan.end_ns != 0 && c.next_due_ns >= plan.end_ns) c.exhausted = true;
    }
  }
  running_ = true;
  for (auto& c : connections_) check_finished(*c);

  timespec start{plan.start_ns / 1'000'000'000, plan.start_ns % 1'000'000'000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &start, nullptr) == EINTR) {
  }
  int64_t now = now_ns();
  for (auto& cp : connections_) {
    Connection& c = *cp;
    if (c.state != ConnState::kReady) continue;
    arm_recv(c);
    issue(c, now);
  }
  next_housekeeping_ = now + kHousekeepingNs;

  while (true) {
    for (Connection* c : dirty_) {
      c->dirty = false;
      flush(*c);
      check_finished(*c);
    }
    dirty_.clear();
    progress_ops_.store(stats_.ops, std::memory_order_relaxed);
    progress_errors_.store(stats_.errors_total, std::memory_order_relaxed);
    if (active_ == 0) break;

    now = now_ns();
    int64_t wake = next_housekeeping_;
    if (plan.end_ns != 0 && !stopped_) wake = std::min(wake, plan.end_ns);
    if (open_loop_) wake = std::min(wake, earliest_due_);
    if (!submit_and_wait(std::max<int64_t>(0, wake - now))) break;
    // One clock reading for every completion of the turn: they were all reaped just now.
    now = now_ns();
    reap(now);

    if (plan.end_ns != 0 && !stopped_ && now >= plan.end_ns) {
      stopped_ = true;
      for (auto& c : connections_) {
        if (open_loop_ && !c->exhausted) {
          // Requests that were due before the end but never sent: the server (or we) fell behind.
          const double due = std::ceil(static_cast<double>(plan.end_ns - c->due_base_ns) / c->interval_ns);
          const auto due_count = static_cast<uint64_t>(std::max(0.0, due));
          if (due_count > c->scheduled) stats_.unsent += std::min(due_count - c->scheduled, c->quota);
        }
        c->exhausted = true;
        check_finished(*c);
      }
    }
    if (open_loop_ && now >= earliest_due_) scan_due(now);
    if (now >= next_housekeeping_) {
      housekeeping(now);
      next_housekeeping_ = now + kHousekeepingNs;
    }
  }
  running_ = false;
  stats_.end_ns = last_reply_ns_;
  close_ring();
  plan_ = nullptr;
}

}  // namespace rend::loadgen
