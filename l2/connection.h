// One client connection of rend-l2: reads, parses and batches requests on the loop thread, has
// the batch executed, and writes the replies back in request order.
//
// A batch first runs on the loop as far as it needs no I/O and no waiting (reads of data in
// memory, small writes: Engine::execute_inline, within the Server's per-turn InlineBudget, so
// busy clients cannot hold the loop); whatever is left goes to a worker thread. That spares the
// common un-pipelined request the trips to a worker and back.
//
// One batch per connection is in flight at a time, so a connection's requests execute strictly
// in order (the loop runs a batch only when nothing of the connection runs on a worker); while it
// runs, the loop keeps reading, and the next batch is everything that arrived meanwhile
// (pipelined load makes batches grow by itself). A batch owns a copy of its requests' bytes, so
// the read buffer may move or be reused while the batch runs.
//
// Memory is bounded: reading stops while unsent output is above the high-water mark or the input
// buffered behind a running batch passes kInputHighWater; a batch stops executing once its reply
// reaches the high-water mark and resumes when the client has read it. A too-large value is
// swallowed as it arrives, never buffered.
//
// Lifetime: created on accept, owned by the Server, deleted only when both its libuv handle is
// closed and no batch is in flight (a running batch points back at it).
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "common/protocol/request.h"
#include "common/read_buffer.h"
#include "common/write_queue.h"
#include "l2/executor.h"
#include "l2/write_history.h"

namespace rend::l2 {

class Server;
class Batch;

class Connection {
 public:
  static constexpr size_t kInputHighWater = 4 << 20;
  static constexpr size_t kMaxBatchRequests = 4096;
  // Reads of at least 16 KiB; a buffer that must grow grows by 64 KiB at least.
  static constexpr size_t kReadRoom = 16 * 1024;
  static constexpr size_t kReadGrowth = 64 * 1024;

  Connection(Server& server, bool tcp);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  uv_stream_t* stream() { return &h_.stream; }
  void start();
  // The client closed both directions (not just its writing side): nobody reads replies.
  bool peer_closed();
  // Closes now: in-flight replies are dropped (a running batch stops before its next segment).
  void close();
  // Graceful stop: answer what was received, then close between requests.
  void drain();

  void on_batch_done(Batch* batch);

  // Who accesses keys through this connection (WriteHistory): a unix-socket peer's pid, so that
  // the connections of one worker count as one; a TCP connection counts on its own.
  WriteHistory::Accessor accessor() const { return accessor_; }

 private:
  void on_alloc(uv_buf_t* buf);
  void on_read(ssize_t nread);
  void swallow_input();
  // Parses what is buffered into a new batch_; false when there is nothing to start.
  bool start_batch();
  // Runs what it can of batch_ on the loop (within the Server's InlineBudget), hands the rest to
  // a worker.
  void run_batch();
  void finish_batch();
  void submit(Batch* batch);
  // Sends what is pending, then starts or resumes work, until nothing more can be done now.
  void flush();
  void send_output();
  void on_write_done(int status);
  void update_reading();
  void maybe_close();
  bool bytes_waiting();
  void on_handle_closed();
  size_t unsent() const { return out_.unsent(); }
  size_t buffered() const { return in_.size(); }

  Server& server_;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h_;
  proto::Protocol protocol_ = proto::Protocol::kText;
  bool protocol_known_ = false;
  ReadBuffer in_{kReadRoom, kReadGrowth};
  uint64_t swallow_ = 0;
  std::unique_ptr<Batch> batch_;  // the batch in flight, or one waiting for output to drain
  bool batch_running_ = false;
  WriteQueue out_;
  bool reading_ = false;
  WriteHistory::Accessor accessor_ = 0;
  bool closing_ = false;
  bool handle_closed_ = false;
  bool input_done_ = false;  // EOF or read error: nothing more will arrive
  bool parse_done_ = false;  // quit, protocol error: nothing after it is executed
  bool draining_ = false;
  bool close_when_flushed_ = false;
};

}  // namespace rend::l2
