// The event loop of rend-loadgen: one Worker per thread, each owning its connections and, while
// connect_all() or run() is running, an io_uring instance.
//
// Why io_uring: on loopback the kernel's TCP work per request is the same for any client, so what
// a client can save is system calls, and on a virtualised host each costs about a microsecond. With
// epoll every request needs a send() and a recv() of its own; here one io_uring_enter() per loop
// turn submits every connection's send and re-armed recv and waits for the next completions, so a
// turn that handles n replies costs one system call instead of about 2n.
//
// Each connection keeps up to --pipeline requests in flight and has at most one send and one recv
// in flight in the kernel; requests composed while a send is in flight go out with the next.
//
// Closed loop: a connection sends its next request as soon as a reply frees a pipeline slot; the
// latency of a request is measured from when it was composed.
// Open loop (--rate): connection i sends its k-th request at base_i + k / (rate / connections),
// whether or not the server keeps up; a request that has to wait for a free slot keeps its
// intended time, and its latency is measured from that time (no coordinated omission).
//
// Ownership: a Worker is created and destroyed by the main thread, but between connect_all() /
// run() being called and returning, only the worker's own thread touches it (progress counters
// excepted, which are atomics). The ring lives only that long: it is created on the calling thread
// (with io_uring's deferred task running, only the thread that created a ring may wait on it, and
// each call may run on a new thread), and before either returns every operation still in flight
// has been cancelled and has completed, so no kernel operation outlives the call or the buffers
// it uses. Nothing here allocates per request once buffers have grown to the run's request and
// reply sizes.
//
// What can fail: creating the ring (io_uring disabled, e.g. by a seccomp profile; this needs Linux
// 5.19 or later, 6.1 for the deferred task running), connects, sends and receives, replies
// (unparseable, for the wrong request, with the wrong outcome or value), and timeouts. None of it
// is thrown or fatal: each is counted in the phase's statistics by kind, with the first few
// described. A connection that fails is closed, its requests in flight counted as aborted, and it
// reconnects after a short delay; one that cannot connect three times in a row is given up for
// the rest of the run. Without a ring no connection is made at all.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/protocol/response_parser.h"
#include "loadgen/model.h"
#include "loadgen/options.h"
#include "loadgen/stats.h"
#include "loadgen/workload.h"

struct io_uring_sqe;

namespace rend::loadgen {

int64_t now_ns();  // CLOCK_MONOTONIC

struct Target {
  sockaddr_storage address{};
  socklen_t length = 0;
  bool tcp = true;
  std::string name;  // "127.0.0.1:11211" or "unix:/path"
};
// Resolves --host/--port or --unix. Returns an error message, or empty on success.
std::string resolve_target(const Options& options, Target& out);

struct PhasePlan {
  const Workload* workload = nullptr;
  uint64_t phase = 0;    // mixed into the seeds
  int64_t start_ns = 0;  // common to every worker
  int64_t end_ns = 0;    // stop sending at this time (0: no limit)
  uint64_t ops = 0;      // requests in total over all connections (0: no limit)
  double rate = 0;       // requests/s in total (0: closed loop)
  unsigned pipeline = 1;
};

class Connection;
struct Pending;
struct IoRing;

class Worker {
 public:
  // `connection_ids`: the global indices (0 .. total_connections-1) of this worker's connections.
  Worker(const Options& options, const Target& target, const KeyFormat& keys, const ValueModel& values,
         std::vector<uint64_t> connection_ids, uint64_t total_connections);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Clears the statistics; connection errors of the next connect_all() and run() land in them.
  void reset_stats();
  // Connects every connection that is not connected and not given up on, until `deadline_ns`.
  void connect_all(int64_t deadline_ns);
  // Runs one phase to its end: the budget spent or the time up, and every reply received (or
  // timed out).
  void run(const PhasePlan& plan);

  const PhaseStats& stats() const { return stats_; }
  size_t connected() const;
  uint64_t progress_ops() const { return progress_ops_.load(std::memory_order_relaxed); }
  uint64_t progress_errors() const { return progress_errors_.load(std::memory_order_relaxed); }

 private:
  // The ring: opened at the start of connect_all() and run(), closed (after every operation in
  // flight has completed) at their end. false: it could not be created (counted as an error).
  bool open_ring();
  void close_ring();
  io_uring_sqe* next_sqe();  // never null: a full submission queue is submitted first
  // Submits what is queued and waits up to `timeout_ns` for a completion beyond the sends'.
  // false: the ring failed (counted as an error) and every connection has been given up.
  bool submit_and_wait(int64_t timeout_ns);
  // Handles every completion there is.
  void reap(int64_t now);
  void issue(Connection& c, int64_t now);
  void compose(Connection& c, Pending& p);
  void arm_recv(Connection& c);
  void on_received(Connection& c, int result, int64_t now);
  void on_sent(Connection& c, int result, int64_t now);
  void on_connect_done(Connection& c, int result, int64_t now);
  // false: the reply was a protocol error and the connection has been failed.
  bool on_text_reply(Connection& c, const proto::TextReply& reply, int64_t now);
  bool on_binary_reply(Connection& c, const proto::BinaryResponse& reply, int64_t now);
  bool on_binary_multi_get_reply(Connection& c, const proto::BinaryResponse& reply, int64_t now);
  bool binary_protocol_error(Connection& c, const proto::BinaryResponse& reply, std::string_view what, int64_t now);
  // Meta (engine_meta.cc): composing mg/ms/md/ma/mn requests and judging their replies.
  void compose_meta(Connection& c, const Pending& p);
  bool on_meta_reply(Connection& c, const proto::MetaResponse& reply, int64_t now);
  bool on_meta_read_reply(Connection& c, const proto::MetaResponse& reply, int64_t now);
  bool on_meta_error(Connection& c, const proto::MetaResponse& reply, int64_t now);
  bool meta_protocol_error(Connection& c, const proto::MetaResponse& reply, std::string_view what, int64_t now);
  void verify(Connection& c, Pending& p, uint64_t key, uint32_t flags, std::string_view data);
  void complete(Connection& c, Outcome outcome, int64_t now, std::string_view detail = {});
  void flush(Connection& c);
  void mark_dirty(Connection& c);
  void start_connect(Connection& c, int64_t now);
  void on_connected(Connection& c, int64_t now);
  void fail(Connection& c, ErrorKind kind, std::string why, int64_t now);
  void connect_failed(Connection& c, int error, int64_t now);
  void close_socket(Connection& c);
  void check_finished(Connection& c);
  void housekeeping(int64_t now);
  void scan_due(int64_t now);
  // run()'s parts: a connection's quota and schedule for the phase; one turn of the loop (false
  // once every connection is done or the ring failed); the phase's time being up.
  void prepare(Connection& c, const PhasePlan& plan);
  bool turn(const PhasePlan& plan);
  void stop_at_end(const PhasePlan& plan);
  std::string key_text(uint64_t key) const;

  const Options& options_;
  const Target& target_;
  const KeyFormat& keys_;
  const ValueModel& values_;
  uint64_t total_connections_;
  std::unique_ptr<IoRing> ring_;  // null outside connect_all() / run()
  unsigned sends_queued_ = 0;     // sends queued since the last wait (see submit_and_wait)
  size_t ops_in_flight_ = 0;      // connect/send/recv operations submitted and not completed
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> dirty_;

  // The phase being run.
  const PhasePlan* plan_ = nullptr;
  bool running_ = false;
  bool open_loop_ = false;
  bool stopped_ = false;  // the phase's time is up: no new requests
  size_t active_ = 0;     // connections not finished with the phase
  int64_t earliest_due_ = INT64_MAX;
  int64_t next_housekeeping_ = 0;
  int64_t last_reply_ns_ = 0;

  PhaseStats stats_;
  std::atomic<uint64_t> progress_ops_{0};
  std::atomic<uint64_t> progress_errors_{0};
};

}  // namespace rend::loadgen
