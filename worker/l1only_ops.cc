#include "worker/l1only_ops.h"

#include <fmt/format.h>

#include <optional>
#include <vector>

#include "common/get_reply_limit.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/command_traits.h"
#include "common/protocol/request_compose.h"
#include "worker/backend_pool.h"
#include "worker/client_connection.h"
#include "worker/l1_access.h"
#include "worker/metric_mapping.h"
#include "worker/reply.h"
#include "worker/worker.h"

namespace rend::worker {

using proto::append_binary_relay;
using proto::append_line;
using proto::append_text_value;
using proto::Command;
using proto::Protocol;
using proto::Request;
using proto::response_flags;
using proto::text_status_line;
namespace bin = proto::bin;

namespace {

// The text reads (get/gets/gat/gats; GetE is binary only and answered locally in l1only).
bool is_read(Command c) { return proto::traits(c).multi_key; }
bool is_touching_read(Command c) { return proto::traits(c).multi_key && proto::traits(c).touches; }
bool returns_cas(Command c) { return proto::traits(c).returns_cas; }

void count_result(WorkerSlot& s, Command c, uint16_t status) {
  const bool ok = status == bin::kSuccess;
  switch (c) {
    case Command::kGet:
    case Command::kGets:
    case Command::kGetE: bump(s, ok ? Counter::get_hits : Counter::get_misses); break;
    case Command::kGat:
    case Command::kGats:
      bump(s, ok ? Counter::get_hits : Counter::get_misses);
      bump(s, ok ? Counter::touch_hits : Counter::touch_misses);
      break;
    case Command::kTouch: bump(s, ok ? Counter::touch_hits : Counter::touch_misses); break;
    case Command::kDelete: bump(s, ok ? Counter::delete_hits : Counter::delete_misses); break;
    case Command::kIncr:
      if (ok || status == bin::kKeyNotFound) bump(s, ok ? Counter::incr_hits : Counter::incr_misses);
      break;
    case Command::kDecr:
      if (ok || status == bin::kKeyNotFound) bump(s, ok ? Counter::decr_hits : Counter::decr_misses);
      break;
    case Command::kCas:
      bump(s, ok ? Counter::cas_hits : status == bin::kKeyExists ? Counter::cas_badval : Counter::cas_misses);
      break;
    default: break;
  }
}

// One request, one backend request, one response.
class ForwardOp : public Op {
 public:
  ForwardOp(Worker& w, const Request& r) : worker_(w), to_(r) {}

  void on_response(uint32_t, const proto::BinaryResponse& r) override {
    const uint16_t status = r.status();
    count_result(worker_.stats(), to_.command, status);
    result = result_for(metric_command, status);
    if (to_.protocol == Protocol::kBinary) {
      const bool is_get = is_read(to_.command) || to_.command == Command::kGetE;
      const bool silent = to_.quiet && (is_get ? status == bin::kKeyNotFound : status == bin::kSuccess);
      if (!silent) append_binary_relay(reply, to_.opcode, to_.opaque, r);
    } else if (to_.quiet) {
      // noreply: memcached sends nothing, whatever the outcome.
    } else if (is_read(to_.command)) {
      if (status == bin::kSuccess) {
        append_text_value(reply, r.key, response_flags(r), r.value, returns_cas(to_.command), r.header.cas);
        append_line(reply, "END");
      } else if (status == bin::kKeyNotFound) {
        append_line(reply, "END");
      } else {
        append_line(reply, text_status_line(to_.command, status));
      }
    } else if ((to_.command == Command::kIncr || to_.command == Command::kDecr) && status == bin::kSuccess &&
               r.value.size() == 8) {
      append_line(reply, fmt::format("{}", bin::load64(r.value.data())));
    } else {
      append_line(reply, text_status_line(to_.command, status));
    }
    finish();
  }

  void on_failure(uint32_t, BackendFailure why) override {
    result = Result::kError;
    append_failure(reply, to_, why);
    finish();
  }

 private:
  Worker& worker_;
  ReplyTo to_;
};

// A text get/gets/gat/gats of several keys: one quiet batch per L1 connection, merged in key order.
class MultiGetOp : public Op {
 public:
  // `per_key`: each key is its own L1 operation (chunked L1), answered under its index as tag;
  // otherwise one quiet batch per connection, hits carrying the key's index as opaque.
  MultiGetOp(Worker& w, const Request& r, size_t keys, int batches, bool per_key)
      : worker_(w),
        command_(r.command),
        hits_(keys),
        outstanding_(batches),
        per_key_(per_key),
        budget_(max_get_reply_bytes(w.config().worker.max_item_size, w.config().worker.output_high_water)) {}

  void on_response(uint32_t tag, const proto::BinaryResponse& r) override {
    if (per_key_) {
      if (r.status() == bin::kSuccess && tag < hits_.size()) {
        keep(tag, r);
      } else if (r.status() != bin::kKeyNotFound) {
        failed_ = true;
      }
      batch_done();
      return;
    }
    if (r.status() != bin::kSuccess || r.header.opaque >= hits_.size()) {
      failed_ = true;
      return;
    }
    keep(r.header.opaque, r);
  }
  void on_complete(uint32_t) override { batch_done(); }
  void on_failure(uint32_t, BackendFailure why) override {
    failure_ = why;
    failed_ = true;
    batch_done();
  }

 private:
  struct Hit {
    std::string key;
    uint32_t flags;
    uint64_t cas;
    std::string value;
  };

  // A hit joins the reply unless the reply would pass the cap (common/get_reply_limit.h); from
  // then on nothing is kept and the request fails as memcached's would.
  void keep(size_t index, const proto::BinaryResponse& r) {
    if (too_large_) return;
    const size_t need = r.value.size() + text_hit_overhead(r.key.size());
    if (need > budget_) {
      too_large_ = true;
      hits_.assign(hits_.size(), std::nullopt);  // the reply is lost anyway: free what it held
      return;
    }
    budget_ -= need;
    hits_[index] = Hit{std::string(r.key), response_flags(r), r.header.cas, std::string(r.value)};
  }

  void batch_done() {
    if (--outstanding_ > 0) return;
    if (too_large_ && !failed_) {
      result = Result::kError;
      append_line(reply, kGetReplyTooLarge);
      finish();
      return;
    }
    if (failed_) {
      result = Result::kError;
      append_line(reply, failure_ ? text_failure(*failure_) : "SERVER_ERROR backend error");
      finish();
      return;
    }
    result = Result::kMiss;
    for (const auto& h : hits_) {
      if (h) result = Result::kHit;
      count_result(worker_.stats(), command_, h ? bin::kSuccess : bin::kKeyNotFound);
      if (h) append_text_value(reply, h->key, h->flags, h->value, returns_cas(command_), h->cas);
    }
    append_line(reply, "END");
    finish();
  }

  Worker& worker_;
  Command command_;
  std::vector<std::optional<Hit>> hits_;
  int outstanding_;
  bool per_key_;
  size_t budget_;  // reply bytes still allowed
  bool too_large_ = false;
  bool failed_ = false;
  std::optional<BackendFailure> failure_;
};

uint8_t backend_opcode(const Request& r) {
  if (r.protocol == Protocol::kBinary) return bin::loud_opcode(r.opcode);
  switch (r.command) {
    case Command::kGet:
    case Command::kGets: return bin::kGetK;
    case Command::kGat:
    case Command::kGats: return bin::kGatK;
    case Command::kCas: return bin::kSet;  // a set carrying the CAS to compare
    default: return proto::binary_opcode_for(r.command, false, false);
  }
}

void multi_get_per_key(Worker& worker, ClientConnection& conn, const Request& r, size_t count) {
  // Chunked L1, two keys or more: each key is a read of its own (a head, then its chunks),
  // merged in key order.
  auto op = std::make_shared<MultiGetOp>(worker, r, count, static_cast<int>(count), true);
  track_request(worker, *op, r);
  conn.enqueue(op);
  uint32_t index = 0;
  proto::for_each_key(r.keys, [&](std::string_view k) {
    Request wire;
    wire.command = is_touching_read(r.command) ? Command::kGat : Command::kGet;
    wire.opcode = is_touching_read(r.command) ? bin::kGatK : bin::kGetK;
    wire.key = k;
    wire.exptime = r.exptime;
    send_l1(worker, wire, op, index++, L1Lock::kTake);
  });
}

}  // namespace

void l1only_forward(Worker& worker, ClientConnection& conn, const Request& r) {
  auto op = std::make_shared<ForwardOp>(worker, r);
  track_request(worker, *op, r);
  conn.enqueue(op);
  Request wire = r;
  wire.opcode = backend_opcode(r);
  wire.opaque = 0;
  wire.quiet = false;
  send_l1(worker, wire, op, 0, L1Lock::kTake);
}

void l1only_multi_get(Worker& worker, ClientConnection& conn, const Request& r) {
  size_t count = 0;
  std::string_view only;
  proto::for_each_key(r.keys, [&](std::string_view k) {
    ++count;
    only = k;
  });
  bump(worker.stats(), Counter::cmd_get, count);
  if (is_touching_read(r.command)) bump(worker.stats(), Counter::cmd_touch, count);
  if (count == 1) {
    // The common single-key read: one request, one response, no batch bookkeeping.
    Request single = r;
    single.key = only;
    l1only_forward(worker, conn, single);
    return;
  }
  if (worker.chunk_store() != nullptr && count > 1) {
    multi_get_per_key(worker, conn, r, count);
    return;
  }
  BackendPool& pool = worker.l1();
  std::vector<int> used(pool.size(), 0);
  std::vector<uint32_t> connection_of_key;  // by the key's position in the request
  connection_of_key.reserve(count);
  int batches = 0;
  proto::for_each_key(r.keys, [&](std::string_view k) {
    const size_t i = pool.index_for_key(k);
    connection_of_key.push_back(static_cast<uint32_t>(i));
    if (used[i] == 0) batches++;
    used[i] = 1;
  });
  auto op = std::make_shared<MultiGetOp>(worker, r, count, batches, false);
  track_request(worker, *op, r);
  conn.enqueue(op);
  if (count == 0) {
    append_line(op->reply, "END");
    op->finish();
    return;
  }
  // One batch per connection: its keys' quiet gets (opaque = the key's position), then a noop.
  Request wire;
  wire.command = is_touching_read(r.command) ? Command::kGat : Command::kGet;
  wire.opcode = is_touching_read(r.command) ? bin::kGatKQ : bin::kGetKQ;
  wire.exptime = r.exptime;
  Request noop;
  noop.command = Command::kNoop;
  noop.opcode = bin::kNoop;
  for (size_t i = 0; i < pool.size(); ++i) {
    if (used[i] == 0) continue;
    pool.send_batch(i, op, static_cast<uint32_t>(i), ExpectKind::kUntilNoop, metric_command_for(r.command),
                    [&](std::string& out) {
                      uint32_t index = 0;
                      proto::for_each_key(r.keys, [&](std::string_view k) {
                        if (connection_of_key[index] == i) {
                          wire.key = k;
                          wire.opaque = index;
                          proto::compose_binary_request(wire, out);
                        }
                        ++index;
                      });
                      proto::compose_binary_request(noop, out);
                    });
  }
}

}  // namespace rend::worker
