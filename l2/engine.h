// Executes a connection's pipelined requests against the Store, in order, and composes the
// replies. Runs on a worker thread, never on the event loop.
//
// Batching: the requests of one batch are cut into segments that keep request order:
//   - consecutive reads (get/gets/GetE, text multi-get) -> one RocksDB MultiGet, no locks;
//   - consecutive writes (set, add, replace, append, prepend, cas, delete, incr, decr, touch,
//     gat) -> the stripe locks of all their keys, one MultiGet of the keys whose current item
//     matters, memcached's rules applied in request order against an in-segment view (so
//     "set k; append k" in one segment sees the set), one WriteBatch, then the locks go;
//   - flush_all and stats stand alone (they observe or change everything);
//   - requests that need no store (version, noop, parse errors...) join whatever segment they
//     are in and are answered in their place.
// A write segment is acknowledged only after its WriteBatch is in RocksDB (and its WAL).
//
// Thread-safe: one Engine serves every worker thread; per-call state lives on the stack.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/protocol/request.h"
#include "l2/key_locks.h"
#include "l2/l2_stats.h"
#include "l2/store.h"

namespace rend::l2 {

struct EngineInfo {
  int64_t started_unix = 0;
  int threads = 0;
  size_t max_item_size = 0;
  std::string socket_path;
  int tcp_port = 0;
};

class Engine {
 public:
  // Requests per segment: bounds a segment's reply (and the locks it holds) without giving up
  // most of MultiGet's and WriteBatch's gain.
  static constexpr size_t kSegmentKeys = 128;

  Engine(Store& store, L2Stats& stats, EngineInfo info) : store_(store), stats_(stats), info_(std::move(info)) {}
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Executes requests[next..] in order, appending replies to `out`, and stops early once `out`
  // holds `reply_limit` bytes (the caller sends them and calls again). Returns the index of the
  // first request not executed.
  size_t execute(std::span<const proto::Request> requests, size_t next, std::string& out, size_t reply_limit);

  L2Stats& stats() { return stats_; }

 private:
  enum class Kind : uint8_t { kRead, kWrite, kLocal, kBarrier };
  static Kind kind_of(const proto::Request& r);
  // Returns how many of the segment's requests it answered: it stops once `out` reaches
  // `reply_limit` (reads change nothing, so the rest is simply read again next round).
  size_t run_reads(std::span<const proto::Request> segment, std::string& out, size_t reply_limit);
  void run_writes(std::span<const proto::Request> segment, std::string& out);
  void run_barrier(const proto::Request& r, std::string& out);
  void run_local(const proto::Request& r, std::string& out);
  void run_stats(const proto::Request& r, std::string& out);

  Store& store_;
  L2Stats& stats_;
  KeyLocks locks_;
  EngineInfo info_;
};

}  // namespace rend::l2
