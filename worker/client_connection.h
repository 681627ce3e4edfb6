// One client connection: reads and parses requests, hands them to the dispatcher, and sends the
// replies back strictly in request order.
//
// Lifetime: created on accept, owned by the Worker, deleted in its libuv close callback (never
// directly), so write and read callbacks can never see a freed object. After close() starts, no
// op refers to it any more (their `conn` is cleared).
//
// Memory is bounded: input is buffered only up to one request (values above max_item_size are
// swallowed, never buffered); reading stops while unsent output is above the high-water mark or
// too many requests are in flight, and resumes when they drain.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "common/protocol/request.h"
#include "common/read_buffer.h"
#include "common/write_queue.h"
#include "worker/connection_handoff.h"
#include "worker/op.h"
#include "worker/reply_queue.h"
#include "worker/tiered.h"

namespace rend::worker {

class Worker;

class ClientConnection {
 public:
  // `tcp`: the stream is a TCP socket (else a unix socket).
  ClientConnection(Worker& worker, bool tcp, TierMode mode);
  TierMode mode() const { return mode_; }
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  uv_stream_t* stream() { return &h_.stream; }
  void start();
  void close();
  bool closing() const { return closing_; }

  // Appends a new op to the reply queue (the code serving the request fills and finishes it).
  void enqueue(const std::shared_ptr<Op>& op);
  // An op reached `done`: move finished replies from the queue's head to the output.
  void on_op_finished();
  // Called from the worker's end-of-turn flush.
  void flush();
  // Stop between requests: close as soon as nothing is in flight.
  void drain();
  // Stop parsing now, answer what was parsed, then pass the connection to the worker's handoff
  // (Worker::hand_over) instead of closing it. A connection the client already closed, or one
  // closing after a quit or a protocol error, just closes.
  void hand_off();
  // A connection handed over by another worker: its protocol, a value being swallowed and the
  // input that worker had read but not parsed. Before start().
  void adopt(const HandedConnection& from);
  // The connection's state for the next worker: a duplicate of its socket and its unparsed input.
  HandedConnection handoff_state();
  // Nothing received since `cutoff_ms` (loop time) and nothing in flight: worker.idle_timeout_s.
  bool idle_since(uint64_t cutoff_ms) const {
    return last_read_ms_ <= cutoff_ms && pending_.empty() && out_.idle() && !closing_;
  }

  bool dirty = false;       // on the worker's flush list
  bool counted = false;     // included in curr_connections
  bool handed_off = false;  // closed here because another worker serves it now

 private:
  void on_alloc(uv_buf_t* buf);
  void on_read(ssize_t nread);
  void process_input();
  void on_write_done(int status);
  void update_reading();
  void maybe_close();
  bool bytes_waiting();
  bool is_barrier(const proto::Request& r) const;
  bool switches_l1_connections(const proto::Request& r);
  bool at_pending_limit() const;
  // How many requests may be in flight (see the .cc), and what it is computed from.
  size_t window() const;
  void note_reply_size(size_t bytes);
  static constexpr size_t kFirstWindow = 64;
  static constexpr size_t kMinWindow = 8;
  // Neither too many requests in flight nor too many unsent reply bytes: new requests may start.
  bool may_parse() const;
  size_t unsent() const { return out_.unsent(); }

  // Reads of at least 16 KiB; a buffer that must grow grows by 64 KiB at least.
  static constexpr size_t kReadRoom = 16 * 1024;
  static constexpr size_t kReadGrowth = 64 * 1024;

  Worker& worker_;
  TierMode mode_;
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
  ReplyQueue pending_;
  WriteQueue out_;
  bool reading_ = false;
  bool closing_ = false;
  bool input_done_ = false;  // EOF, quit, protocol error or drain: read nothing more
  bool draining_ = false;
  bool handing_off_ = false;
  bool close_when_flushed_ = false;
  bool barrier_ = false;  // a flush_all waits for, or holds back, this client's other requests
  enum class L1Connections : uint8_t { kNone, kBinary, kMeta };
  L1Connections last_l1_connections_ = L1Connections::kNone;  // l1only: what the last key request used
  // Parsing stopped with requests still in the buffer (in-flight limit or a barrier): nothing is
  // read until they are parsed, so the buffer never holds more than one read beyond a request.
  bool parse_stalled_ = false;
  uint64_t last_read_ms_ = 0;  // loop time of the last bytes received (or of the accept)
  size_t reply_bytes_avg_ = 0;
  bool reply_size_known_ = false;
};

}  // namespace rend::worker
