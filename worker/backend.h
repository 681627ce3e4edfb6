// What one connection to a backend (L1 memcached or rend-l2) is to the rest of the worker.
//
// BackendConnection is the real one (a pipelined binary-protocol socket). Component tests put a
// scripted fake in its place (Worker's BackendFactory), which is why this is an interface: the
// worker's logic, from the dispatcher down to the tier rules' interpreters, cannot tell them apart.
//
// Ops never reach a Backend directly: BackendPool::send() and its siblings are the one seam
// between the worker's logic and its backends.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/request_metrics.h"
#include "worker/op.h"

namespace rend::worker {

enum class ExpectKind : uint8_t {
  kSingle,        // exactly one response
  kUntilNoop,     // quiet gets: any number of hits, then the NOOP that ends the batch
  kUntilStatEnd,  // stats: responses until the one with an empty key (or an error)
  kMeta,          // one meta reply (a connection that speaks memcached's meta protocol)
  kMetaUntilMn,   // a quiet meta request and the mn after it: its reply, if any, then MN
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual void start() = 0;
  // Closes the connection for good; outstanding requests fail.
  virtual void shutdown() = 0;
  // False while the backend cannot take requests (down, waiting to reconnect): they fail at once.
  virtual bool accepting() const = 0;
  // Nothing sent is still unanswered.
  virtual bool idle() const = 0;
  virtual bool closed() const = 0;
  // Writes what this loop turn appended (the worker calls it from its end-of-turn flush).
  virtual void flush() = 0;
  // Fails everything outstanding if the oldest request is past its deadline.
  virtual void check_deadline(uint64_t now_ms) = 0;
  // The backend is known to be back (a planned restart ended): a connection waiting out its
  // reconnect delay connects now.
  virtual void reconnect_now() {}

  // L1 only. A step that should have updated or buried `key`'s copy failed: memcached may still
  // hold the old value. A tombstone (l1_envelope.h) goes out now if connected, or as the first
  // request after reconnecting.
  virtual void bury(std::string key) = 0;
  // Every key at once (a flush_all of L1).
  virtual void bury_all() = 0;

  // The buffer composed requests are appended to, and the expectation that follows them: the
  // responses to everything appended since the previous expect() go to `op` under `tag`.
  // Only BackendPool calls these.
  virtual std::string& out() = 0;
  virtual void expect(std::shared_ptr<Op> op, uint32_t tag, ExpectKind kind, MetricCommand command) = 0;
};

class Worker;

// Makes connection `index` of a tier's pool; the default makes BackendConnections.
using BackendFactory = std::function<std::unique_ptr<Backend>(Worker& worker, Tier tier, size_t index,
                                                              const BackendConfig& config, size_t max_body)>;

}  // namespace rend::worker
