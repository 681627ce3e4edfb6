// An Op is one client request in flight: the slot in the client's ordered reply queue, and the
// receiver of whatever the backends answer for it.
//
// Ownership: shared by the client connection's reply queue and every backend expectation that
// will deliver to it, so either side may go away first. When the client goes, `conn` is cleared
// and the op's reply is simply dropped once the backends are done with it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/protocol/binary_parser.h"
#include "common/protocol/response_parser.h"
#include "common/request_metrics.h"

namespace rend::worker {

class ClientConnection;

enum class BackendFailure : uint8_t {
  kUnavailable,  // not connected: the request never reached the backend
  kLost,         // the connection broke with the request outstanding: it may have been applied
  kTimeout,      // no answer within the deadline (it may still be applied)
};

class Op {
 public:
  virtual ~Op() = default;
  // One response to the backend request registered under `tag`.
  virtual void on_response(uint32_t /*tag*/, const proto::BinaryResponse& /*response*/) {}
  // The reply to a meta request (ExpectKind::kMeta), as memcached sent it.
  virtual void on_meta_response(uint32_t /*tag*/, const proto::MetaResponse& /*response*/) {}
  // A multi-response request (a quiet-get batch, a stats group) has received its last response.
  virtual void on_complete(uint32_t /*tag*/) {}
  // The backend request `tag` will never be answered.
  virtual void on_failure(uint32_t /*tag*/, BackendFailure /*why*/) {}

  // Called just before the reply is sent, once every earlier reply has gone: a reply that reports
  // state (stats) is composed here, so it reflects every request the client sent before it.
  virtual void before_send() {}

  // Marks the reply final and lets the connection send it when it reaches the queue's head.
  void finish();

  // Client-tier metrics: recorded once, when the op finishes (null when metrics are off). Start
  // and end are the metric clock's readings for the loop iterations that read the request and
  // completed the reply (see MetricClockBatch).
  void track(RequestMetrics* m, MetricCommand command) {
    metrics = m;
    metric_command = command;
    if (m != nullptr) start_ns = metric_clock_ns();
  }

  ClientConnection* conn = nullptr;
  std::weak_ptr<Op> self_weak_;  // set by ops that issue further steps from their own callbacks
  RequestMetrics* metrics = nullptr;
  uint64_t start_ns = 0;
  MetricCommand metric_command = MetricCommand::kOther;
  Result result = Result::kOk;
  std::string reply;
  bool done = false;
  bool close_after = false;  // close the connection once this reply is sent (quit, protocol error)
};

}  // namespace rend::worker
