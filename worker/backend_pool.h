// The fixed set of connections a worker keeps to one backend, and the one seam through which
// every op reaches it: send() for one request, send_batch() for several on one connection.
//
// A key always maps to the same connection (xxHash of the key), which keeps one key's operations
// in order on the wire. A request for a connection that is down fails at once, through the op's
// on_failure(tag, kUnavailable): the same path as a connection that breaks later.
//
// Held (a planned restart of the backend): requests are composed and kept here, in order, instead
// of being sent; release() reconnects at once and sends them, so a restart of memcached that takes
// less than the hold costs clients latency, not errors.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol/request.h"
#include "worker/backend.h"

namespace rend::worker {

class BackendPool {
 public:
  BackendPool(Worker& worker, Tier tier, const BackendConfig& config, size_t max_body, const BackendFactory& factory);
  void start();
  void shutdown();
  // Nothing sent is unanswered, and nothing is held.
  bool idle() const;
  // Everything sent has been answered (held requests aside).
  bool answered_all() const;

  size_t size() const { return connections_.size(); }
  size_t index_for_key(std::string_view key) const;
  void check_deadlines(uint64_t now_ms);

  // One request (composed here) on the connection its key maps to; one response goes to `op`
  // under `tag`. `command` labels its metrics (by default, the opcode's command).
  void send(const proto::Request& wire, const std::shared_ptr<Op>& op, uint32_t tag);
  void send(const proto::Request& wire, const std::shared_ptr<Op>& op, uint32_t tag, MetricCommand command);
  // One request composed by the caller, for `key`.
  void send_composed(std::string_view key, std::string_view bytes, const std::shared_ptr<Op>& op, uint32_t tag,
                     MetricCommand command);
  // Any number of requests on connection `index`, appended by `compose(std::string& out)`, answered
  // as `kind` says. Returns false (after failing the op) when the connection is down.
  template <class Compose>
  bool send_batch(size_t index, const std::shared_ptr<Op>& op, uint32_t tag, ExpectKind kind, MetricCommand command,
                  Compose&& compose) {
    if (holding_) {
      Held h{index, {}, op, tag, kind, command};
      compose(h.bytes);
      held_.push_back(std::move(h));
      return true;
    }
    Backend& b = *connections_[index];
    if (!b.accepting()) {
      op->on_failure(tag, BackendFailure::kUnavailable);
      return false;
    }
    compose(b.out());
    b.expect(op, tag, kind, command);
    return true;
  }

  // L1 only: tombstones for a key whose copy may be stale, or for every key (Backend::bury).
  void bury(std::string key);
  void bury_all();

  // Keep new requests here instead of sending them / send what was kept (see above).
  void hold() { holding_ = true; }
  void release();
  bool holding() const { return holding_; }

 private:
  struct Held {
    size_t index;
    std::string bytes;
    std::shared_ptr<Op> op;
    uint32_t tag;
    ExpectKind kind;
    MetricCommand command;
  };
  std::vector<std::unique_ptr<Backend>> connections_;
  bool holding_ = false;
  std::deque<Held> held_;
};

// The BackendFactory of a running worker: real sockets.
BackendFactory real_backends();

}  // namespace rend::worker
