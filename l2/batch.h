// A batch: the requests parsed from one connection in one go, executed together by the Engine
// (see engine.h for how it is cut into MultiGets and WriteBatches): first on the event loop as
// far as that needs no I/O (run_inline), the rest on a worker thread (run).
//
// The batch owns a copy of the bytes its requests were parsed from, and the requests' views point
// into that copy, so the connection's read buffer is free to move while the batch runs. It may be
// executed in several rounds: each round stops once the reply holds `reply_limit` bytes, so a
// pipeline of large gets never builds an unbounded reply.
//
// Ownership: the Connection; the Executor only runs it. Not thread-safe: touched by one thread at
// a time (the loop before submit and after complete, one worker in between).
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "common/protocol/request.h"
#include "l2/engine.h"
#include "l2/executor.h"

namespace rend::l2 {

class Connection;

class Batch : public Job {
 public:
  Batch(Connection& conn, Engine& engine, size_t reply_limit)
      : conn_(conn), engine_(engine), reply_limit_(reply_limit) {}

  // Total bytes of the requests to come: the arena never reallocates, so views stay valid.
  void reserve(size_t bytes, size_t requests);
  // `r`'s views point into [bytes, bytes + size); they are redirected into the batch's copy.
  void add(const proto::Request& r, const char* bytes, size_t size);

  // On the loop, and only while no earlier request of the connection is still running: executes
  // what it can without I/O or waiting (Engine::execute_inline, which spends `budget`).
  void run_inline(InlineBudget& budget);
  void run() override;
  void complete() override;

  // The connection has closed: the rest is not executed (Engine::execute says why). Set on
  // the loop while run() may be executing on a worker thread.
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }

  bool finished() const { return next_ == requests_.size(); }
  bool empty() const { return requests_.empty(); }
  // The last request closes the connection once answered (quit, binary protocol error).
  bool close_after() const { return !requests_.empty() && requests_.back().close_after; }
  std::string& reply() { return reply_; }

 private:
  Connection& conn_;
  Engine& engine_;
  size_t reply_limit_;
  std::string arena_;
  std::vector<proto::Request> requests_;
  size_t next_ = 0;
  std::string reply_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace rend::l2
