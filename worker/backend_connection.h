// One pipelined memcached-binary-protocol connection from a worker to a backend: L1 memcached or
// rend-l2 (the same protocol, plus GetE and the race-tracking data-type bit). The real Backend
// (backend.h), reached only through BackendPool.
//
// Requests are appended to out() by the pool, followed by expect(): responses come back in
// request order, so a FIFO of expectations matches them. Everything appended in one loop turn is
// written with one write (the worker calls flush() from its check handle).
//
// Failure model: if the connection breaks, a response is malformed, or the oldest request passes
// its deadline while nothing has arrived for as long, every outstanding request fails (its op
// answers SERVER_ERROR), the socket is closed and a reconnect is scheduled with capped
// exponential backoff. While waiting to reconnect, accepting() is false and callers fail requests
// at once instead of queueing them.
#pragma once

#include <uv.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/read_buffer.h"
#include "common/shared_stats.h"
#include "common/write_queue.h"
#include "worker/backend.h"
#include "worker/op.h"

namespace rend::worker {

class Worker;

class BackendConnection final : public Backend {
 public:
  BackendConnection(Worker& worker, Tier tier, std::string name, const BackendConfig& config, size_t max_body);
  BackendConnection(const BackendConnection&) = delete;
  BackendConnection& operator=(const BackendConnection&) = delete;
  ~BackendConnection() override;

  void start() override;
  // Closes the socket and stops reconnecting; outstanding requests fail.
  void shutdown() override;
  bool accepting() const override { return state_ == State::kConnected || state_ == State::kConnecting; }
  bool idle() const override { return expect_.empty(); }
  bool closed() const override { return state_ == State::kStopped && socket_ == nullptr; }

  std::string& out() override { return out_.buffer(); }
  void expect(std::shared_ptr<Op> op, uint32_t tag, ExpectKind kind, MetricCommand command) override;
  void flush() override;
  void check_deadline(uint64_t now_ms) override;
  void reconnect_now() override;

  // A timeout or a broken connection leaves L1's copy possibly stale, which memcached would go on
  // serving to every worker: the tombstone goes out now, or first thing after reconnecting. Past
  // kMaxBuryKeys keys a flush_all goes instead (bury_all: also when such a flush was lost).
  void bury(std::string key) override;
  void bury_all() override;

 private:
  enum class State : uint8_t { kWaiting, kConnecting, kConnected, kStopped };
  struct Expectation {
    std::shared_ptr<Op> op;
    uint32_t tag;
    ExpectKind kind;
    MetricCommand command;
    uint64_t deadline_ms;
    uint64_t sent_ns;
  };
  struct Socket;

  void connect();
  void on_connected(int status);
  void on_read(ssize_t nread, const uv_buf_t* buf);
  void on_write_done(int status);
  void process_input();
  bool process_meta_reply();  // false: stop reading (more bytes needed, or the connection failed)
  void fail(BackendFailure why, const char* what);
  void close_socket();
  void schedule_reconnect();

  // Metrics of one backend request's outcome. The check (and the batch's clock reading) is inline
  // so that, with metrics off (sent_ns 0), it is all the response path pays; the recording
  // itself is out of line.
  void record(const Expectation& e, Result r) {
    if (e.sent_ns != 0) record_sample(e, r, metric_clock_ns());
  }
  void record_sample(const Expectation& e, Result r, uint64_t now_ns);
  Counter counter(Counter l1_counter) const;

  Worker& worker_;
  Tier tier_;
  std::string name_;
  BackendConfig config_;
  size_t max_body_;
  State state_ = State::kWaiting;
  Socket* socket_ = nullptr;  // owned; freed in the close callback
  uv_timer_t reconnect_timer_;
  uint64_t backoff_ms_;
  WriteQueue out_;
  std::deque<Expectation> expect_;
  ReadBuffer in_{64 * 1024, 64 * 1024};  // responses may be large (a chunked value's batch)
  bool logged_down_ = false;
  static constexpr size_t kMaxBuryKeys = 100000;
  std::vector<std::string> to_bury_;  // keys to bury once connected again
  bool flush_on_connect_ = false;     // too many keys to bury one by one
  void send_burials();
  uint64_t last_read_ms_ = 0;  // loop time of the last bytes received
};

}  // namespace rend::worker
