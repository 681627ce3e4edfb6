// rend-loadgen's engine internals, shared by its parts (engine.cc: the worker and its ring;
// engine_connections.cc; engine_io.cc: sending and receiving; engine_replies.cc; engine_meta.cc;
// engine_loop.cc):
// a request in flight, the per-connection FIFO of them, and a connection's state and buffers.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loadgen/engine.h"

namespace rend::loadgen {

inline constexpr size_t kInitialReadBuffer = 16 * 1024;
inline constexpr size_t kMinRead = 4096;
// Bound on any reply body the parsers accept: larger is a corrupt stream, not a reason to buffer.
inline constexpr size_t kMaxReplyBody = kMaxValueSize + 4096;
inline constexpr int kMaxConnectFailures = 3;
inline constexpr int64_t kHousekeepingNs = 10'000'000;
inline constexpr int64_t kReconnectDelayNs = 100'000'000;
inline constexpr uint64_t kNoKey = UINT64_MAX;
// Ring sizes: a connection has at most a connect or a send and a recv in flight, plus a cancel.
inline constexpr unsigned kMinRingEntries = 64;
inline constexpr unsigned kMaxRingEntries = 4096;  // beyond, a full submission queue is submitted early
inline constexpr unsigned kReapBatch = 64;

// What a completion is for: user_data = connection slot << 8 | IoOp. kNone (cancels) is ignored.
enum IoOp : uint8_t { kNone = 0, kConnectOp, kSendOp, kRecvOp };
inline uint64_t io_tag(size_t slot, IoOp op) { return (uint64_t{slot} << 8) | op; }

// `bytes` with what is not printable escaped, cut at `limit` (for error descriptions).
std::string printable(std::string_view bytes, size_t limit = 48);

struct IoRing {
  io_uring ring{};
};

// One request in flight.
struct Pending {
  Op op;
  int64_t start_ns = 0;       // the latency clock's start (the intended send time in an open loop)
  int64_t sent_ns = 0;        // when it was composed (for --timeout)
  uint32_t opaque = 0;        // binary: the reply's opaque (a multi-get's NOOP)
  uint32_t first_opaque = 0;  // binary multi-get: GETKQ i carries first_opaque + i
  uint8_t opcode = 0;         // binary: the opcode sent (the reply echoes it)
  uint8_t cursor = 0;         // reads: the first key position a value may still be for
  uint8_t hits = 0;
  bool error_reply = false;  // binary multi-get: some key got an error status
};

// The outcome of a read once its last reply is in: an error reply for any key, or how many of
// its keys were hits.
inline Outcome read_outcome(const Pending& p) {
  if (p.error_reply) return Outcome::kErrorReply;
  if (p.hits == 0) return Outcome::kMiss;
  return p.hits >= p.op.nkeys ? Outcome::kHit : Outcome::kPartial;
}

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
  int failures = 0;  // consecutive failed connects
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

}  // namespace rend::loadgen
