#include "worker/orchestrator.h"

#include <fmt/format.h>

#include <optional>
#include <vector>

#include "common/get_reply_limit.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/command_traits.h"
#include "common/protocol/request_compose.h"
#include "common/version.h"
#include "worker/backend_connection.h"
#include "worker/backend_pool.h"
#include "worker/client_connection.h"
#include "worker/l1_access.h"
#include "worker/metric_mapping.h"
#include "worker/reply.h"
#include "worker/stats_report.h"
#include "worker/tier_rules.h"
#include "worker/tiered.h"
#include "worker/worker.h"

namespace rend::worker {

using proto::Command;
using proto::Protocol;
using proto::Request;
using proto::append_binary_relay;
using proto::append_binary_status;
using proto::append_line;
using proto::append_text_value;
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
    case Command::kGetE:
      bump(s, ok ? Counter::get_hits : Counter::get_misses);
      break;
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
    default:
      break;
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
    if (to_.protocol == Protocol::kBinary) {
      append_binary_status(reply, to_.opcode, to_.opaque, binary_failure(why));
    } else if (!to_.quiet) {
      append_line(reply, text_failure(why));
    }
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
      : worker_(w), command_(r.command), hits_(keys), outstanding_(batches), per_key_(per_key),
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

// flush_all goes to every L1 connection: each flush is ordered after the writes already sent on
// that connection, so nothing the client wrote before the flush survives it.
class FanOutOp : public Op {
 public:
  FanOutOp(const Request& r, int parts) : to_(r), outstanding_(parts) {}
  void on_response(uint32_t, const proto::BinaryResponse& r) override {
    if (r.status() != bin::kSuccess && status_ == bin::kSuccess) status_ = r.status();
    part_done();
  }
  void on_failure(uint32_t, BackendFailure why) override {
    failure_ = why;
    part_done();
  }

 private:
  void part_done() {
    if (--outstanding_ > 0) return;
    result = failure_ || status_ != bin::kSuccess ? Result::kError : Result::kOk;
    if (to_.protocol == Protocol::kBinary) {
      const uint16_t status = failure_ ? binary_failure(*failure_) : status_;
      if (!(to_.quiet && status == bin::kSuccess)) append_binary_status(reply, to_.opcode, to_.opaque, status);
    } else if (!to_.quiet) {
      append_line(reply, failure_ ? text_failure(*failure_) : status_ == bin::kSuccess ? "OK" : "SERVER_ERROR backend error");
    }
    finish();
  }
  ReplyTo to_;
  int outstanding_;
  uint16_t status_ = bin::kSuccess;
  std::optional<BackendFailure> failure_;
};

// "stats <group>" is L1's own report (slabs, items, settings, ...), relayed.
class StatsGroupOp : public Op {
 public:
  StatsGroupOp(const Request& r, bool reset) : to_(r), reset_(reset) {}
  void on_response(uint32_t, const proto::BinaryResponse& r) override {
    if (to_.protocol == Protocol::kBinary) {
      append_binary_relay(reply, to_.opcode, to_.opaque, r);
      return;
    }
    if (r.status() != bin::kSuccess) {
      error_ = true;
    } else if (!r.key.empty()) {
      body_.append("STAT ").append(r.key).append(" ").append(r.value).append("\r\n");
    }
  }
  void on_complete(uint32_t) override {
    if (error_) result = Result::kError;
    if (to_.protocol == Protocol::kText) {
      if (error_) {
        append_line(reply, "ERROR");
      } else if (reset_) {
        append_line(reply, "RESET");
      } else {
        reply.append(body_);
        append_line(reply, "END");
      }
    }
    finish();
  }
  void on_failure(uint32_t, BackendFailure why) override {
    result = Result::kError;
    if (to_.protocol == Protocol::kBinary) {
      reply.clear();
      append_binary_status(reply, to_.opcode, to_.opaque, binary_failure(why));
    } else {
      append_line(reply, text_failure(why));
    }
    finish();
  }

 private:
  ReplyTo to_;
  bool reset_;
  bool error_ = false;
  std::string body_;
};

// A set whose value was too large: memcached drops the old value too (so a reader never sees
// data older than a write that failed), then reports the error.
class TooLargeOp : public Op {
 public:
  explicit TooLargeOp(const Request& r) : to_(r), text_(r.error_text) {}
  void on_response(uint32_t, const proto::BinaryResponse&) override { respond(); }
  void on_failure(uint32_t, BackendFailure) override { respond(); }
  void respond() {
    result = Result::kError;
    if (to_.protocol == Protocol::kBinary) {
      append_binary_status(reply, to_.opcode, to_.opaque, bin::kTooLarge);
    } else if (!to_.quiet) {
      append_line(reply, text_);
    }
    finish();
  }

 private:
  ReplyTo to_;
  std::string_view text_;  // a string literal from the parser
};

// Plain `stats`: rend's own counters, composed when its turn to be sent comes.
class StatsOp : public Op {
 public:
  StatsOp(Worker& w, const Request& r) : worker_(w), to_(r) {}
  void before_send() override {
    if (to_.protocol == Protocol::kBinary) {
      append_binary_stats(reply, worker_, to_.opcode, to_.opaque);
    } else {
      append_text_stats(reply, worker_);
    }
  }

 private:
  Worker& worker_;
  ReplyTo to_;
};

// Text `cas` with unique 0: memcached compares 0 with the item's CAS, which is never 0, so the
// answer is EXISTS or NOT_FOUND and nothing is stored. The binary protocol has no way to say
// this (a binary set with CAS 0 is unconditional), so it is answered from a plain read.
class CasZeroOp : public Op {
 public:
  CasZeroOp(Worker& w, const Request& r) : worker_(w), key_(r.key), quiet_(r.quiet) {}

  // Reads the key from L2 (`tiered`, under the worker's key lock) or from L1.
  void start(bool tiered, bool lock) {
    auto self = std::static_pointer_cast<CasZeroOp>(self_weak_.lock());
    auto begin = [self, tiered] {
      Request wire;
      wire.command = Command::kGet;
      wire.opcode = bin::kGetK;
      wire.key = self->key_;
      if (!tiered) {
        send_l1(self->worker_, wire, self, 0, L1Lock::kTake);
        return;
      }
      BackendConnection& b = self->worker_.l2().for_key(self->key_);
      if (!b.accepting()) {
        self->on_failure(0, BackendFailure::kUnavailable);
        return;
      }
      proto::compose_binary_request(wire, b.out());
      b.expect(self, 0, ExpectKind::kSingle, MetricCommand::kGet);
    };
    locked_ = lock;
    if (lock) {
      worker_.key_lock().acquire(key_, false, begin);
    } else {
      begin();
    }
  }
  void on_response(uint32_t, const proto::BinaryResponse& r) override {
    const bool exists = r.status() == bin::kSuccess;
    bump(worker_.stats(), exists ? Counter::cas_badval : Counter::cas_misses);
    result = exists ? Result::kExists : Result::kMiss;
    done(exists ? "EXISTS" : r.status() == bin::kKeyNotFound ? "NOT_FOUND" : "SERVER_ERROR backend error");
  }
  void on_failure(uint32_t, BackendFailure why) override {
    result = Result::kError;
    done(text_failure(why));
  }

 private:
  void done(std::string_view line) {
    if (!quiet_) append_line(reply, line);
    finish();
    if (locked_) {
      locked_ = false;
      worker_.key_lock().release(key_, false);
    }
  }
  Worker& worker_;
  std::string key_;
  bool quiet_;
  bool locked_ = false;
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

}  // namespace

void Orchestrator::track(Op& op, const Request& r) {
  op.track(worker_.config().metrics_enabled ? &worker_.stats().requests : nullptr, metric_command_for(r.command));
}

void Orchestrator::count_request(const Request& r) {
  WorkerSlot& s = worker_.stats();
  switch (r.command) {
    case Command::kGet:
    case Command::kGets:
    case Command::kGetE:
      if (r.protocol == Protocol::kBinary) bump(s, Counter::cmd_get);
      break;
    case Command::kGat:
    case Command::kGats:
      if (r.protocol == Protocol::kBinary) {
        bump(s, Counter::cmd_get);
        bump(s, Counter::cmd_touch);
      }
      break;
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
      bump(s, Counter::cmd_set);
      break;
    case Command::kTouch: bump(s, Counter::cmd_touch); break;
    case Command::kFlushAll: bump(s, Counter::cmd_flush); break;
    case Command::kTooLarge:
      bump(s, Counter::cmd_set);
      bump(s, Counter::store_too_large);
      break;
    case Command::kError:
    case Command::kUnknown:
      bump(s, Counter::protocol_errors);
      break;
    default:
      break;
  }
}

void Orchestrator::dispatch(ClientConnection& conn, const Request& r) {
  count_request(r);
  if (r.command == Command::kCas && r.cas == 0 && r.protocol == Protocol::kText) {
    auto op = std::make_shared<CasZeroOp>(worker_, r);
    op->self_weak_ = op;
    track(*op, r);
    conn.enqueue(op);
    const bool tiered = has_l2(conn.mode());
    op->start(tiered, tiered && worker_.config().worker.key_ordering);
    return;
  }
  if (has_l2(conn.mode()) && dispatch_tiered(worker_, conn, r, conn.mode())) return;
  switch (r.command) {
    case Command::kGet:
    case Command::kGets:
    case Command::kGat:
    case Command::kGats:
      if (r.protocol == Protocol::kText) {
        multi_get(conn, r);
      } else {
        forward(conn, r);
      }
      return;
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
    case Command::kDelete:
    case Command::kIncr:
    case Command::kDecr:
    case Command::kTouch:
      forward(conn, r);
      return;
    case Command::kFlushAll: flush_all(conn, r); return;
    case Command::kTooLarge: too_large(conn, r); return;
    case Command::kStats:
      if (!r.stats_group.empty()) {
        stats_group(conn, r);
      } else {
        auto op = std::make_shared<StatsOp>(worker_, r);
        track(*op, r);
        conn.enqueue(op);
        op->finish();
      }
      return;
    default:
      break;
  }
  local_reply(conn, r);
}

void Orchestrator::local_reply(ClientConnection& conn, const Request& r) {
  auto op = std::make_shared<Op>();
  track(*op, r);
  conn.enqueue(op);
  op->close_after = r.close_after;
  if (r.command == Command::kError || r.command == Command::kUnknown || r.command == Command::kGetE) {
    op->result = Result::kError;
  }
  std::string& out = op->reply;
  const bool binary = r.protocol == Protocol::kBinary;
  switch (r.command) {
    case Command::kVersion:
      if (binary) {
        bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, 0, {}, {}, reported_version());
      } else {
        append_line(out, fmt::format("VERSION {}", reported_version()));
      }
      break;
    case Command::kVerbosity:
    case Command::kNoop:
      if (binary) {
        append_binary_status(out, r.opcode, r.opaque, bin::kSuccess);
      } else if (!r.quiet) {
        append_line(out, "OK");
      }
      break;
    case Command::kQuit:
      if (binary && r.opcode == bin::kQuit) append_binary_status(out, r.opcode, r.opaque, bin::kSuccess);
      break;
    case Command::kGetE:
      // Rend's get-with-expiry needs an L2 that keeps expiry times; plain memcached has none.
      append_binary_status(out, r.opcode, r.opaque, bin::kUnknownCommand);
      break;
    case Command::kError:
    case Command::kUnknown:
      if (binary) {
        append_binary_status(out, r.opcode, r.opaque, r.error_status);
      } else if (!r.quiet) {
        append_line(out, r.error_text);
      }
      break;
    default:
      append_line(out, "ERROR");
      break;
  }
  op->finish();
}

void Orchestrator::forward(ClientConnection& conn, const Request& r) {
  auto op = std::make_shared<ForwardOp>(worker_, r);
  track(*op, r);
  conn.enqueue(op);
  Request wire = r;
  wire.opcode = backend_opcode(r);
  wire.opaque = 0;
  wire.quiet = false;
  send_l1(worker_, wire, op, 0, L1Lock::kTake);
}

void Orchestrator::multi_get(ClientConnection& conn, const Request& r) {
  size_t count = 0;
  std::string_view only;
  proto::for_each_key(r.keys, [&](std::string_view k) {
    ++count;
    only = k;
  });
  bump(worker_.stats(), Counter::cmd_get, count);
  if (is_touching_read(r.command)) bump(worker_.stats(), Counter::cmd_touch, count);
  if (count == 1) {
    // The common single-key read: one request, one response, no batch bookkeeping.
    Request single = r;
    single.key = only;
    forward(conn, single);
    return;
  }
  if (worker_.chunk_store() != nullptr && count > 1) {
    multi_get_per_key(conn, r, count);
    return;
  }
  BackendPool& pool = worker_.l1();
  std::vector<int> used(pool.size(), 0);
  int batches = 0;
  proto::for_each_key(r.keys, [&](std::string_view k) {
    const size_t i = pool.index_for_key(k);
    if (used[i] == 0) batches++;
    used[i] = 1;
  });
  auto op = std::make_shared<MultiGetOp>(worker_, r, count, batches, false);
  track(*op, r);
  conn.enqueue(op);
  if (count == 0) {
    append_line(op->reply, "END");
    op->finish();
    return;
  }
  const uint8_t opcode = is_touching_read(r.command) ? bin::kGatKQ : bin::kGetKQ;
  uint32_t index = 0;
  proto::for_each_key(r.keys, [&](std::string_view k) {
    BackendConnection& b = pool.at(pool.index_for_key(k));
    if (b.accepting()) {
      Request wire;
      wire.command = is_touching_read(r.command) ? Command::kGat : Command::kGet;
      wire.opcode = opcode;
      wire.key = k;
      wire.exptime = r.exptime;
      wire.opaque = index;
      proto::compose_binary_request(wire, b.out());
    }
    ++index;
  });
  for (size_t i = 0; i < pool.size(); ++i) {
    if (used[i] == 0) continue;
    BackendConnection& b = pool.at(i);
    if (!b.accepting()) {
      op->on_failure(static_cast<uint32_t>(i), BackendFailure::kUnavailable);
      continue;
    }
    Request noop;
    noop.command = Command::kNoop;
    noop.opcode = bin::kNoop;
    proto::compose_binary_request(noop, b.out());
    b.expect(op, static_cast<uint32_t>(i), ExpectKind::kUntilNoop, metric_command_for(r.command));
  }
}

void Orchestrator::multi_get_per_key(ClientConnection& conn, const Request& r, size_t count) {
  // Chunked L1, two keys or more: each key is a read of its own (a head, then its chunks),
  // merged in key order.
  auto op = std::make_shared<MultiGetOp>(worker_, r, count, static_cast<int>(count), true);
  track(*op, r);
  conn.enqueue(op);
  uint32_t index = 0;
  proto::for_each_key(r.keys, [&](std::string_view k) {
    Request wire;
    wire.command = is_touching_read(r.command) ? Command::kGat : Command::kGet;
    wire.opcode = is_touching_read(r.command) ? bin::kGatK : bin::kGetK;
    wire.key = k;
    wire.exptime = r.exptime;
    send_l1(worker_, wire, op, index++, L1Lock::kTake);
  });
}

void Orchestrator::flush_all(ClientConnection& conn, const Request& r) {
  // Every connection of every tier: each flush is ordered after the writes already sent on it.
  std::vector<BackendConnection*> all;
  for (size_t i = 0; i < worker_.l1().size(); ++i) all.push_back(&worker_.l1().at(i));
  if (has_l2(conn.mode())) {
    for (size_t i = 0; i < worker_.l2().size(); ++i) all.push_back(&worker_.l2().at(i));
  }
  auto op = std::make_shared<FanOutOp>(r, static_cast<int>(all.size()));
  track(*op, r);
  conn.enqueue(op);
  for (size_t i = 0; i < all.size(); ++i) {
    BackendConnection& b = *all[i];
    if (!b.accepting()) {
      op->on_failure(static_cast<uint32_t>(i), BackendFailure::kUnavailable);
      continue;
    }
    Request wire;
    wire.command = Command::kFlushAll;
    wire.opcode = bin::kFlush;
    wire.has_exptime = r.has_exptime;
    wire.exptime = r.exptime;
    proto::compose_binary_request(wire, b.out());
    b.expect(op, static_cast<uint32_t>(i), ExpectKind::kSingle, MetricCommand::kFlushAll);
  }
}

void Orchestrator::stats_group(ClientConnection& conn, const Request& r) {
  auto op = std::make_shared<StatsGroupOp>(r, r.stats_group == "reset");
  track(*op, r);
  conn.enqueue(op);
  BackendConnection& b = worker_.l1().at(0);
  if (!b.accepting()) {
    op->on_failure(0, BackendFailure::kUnavailable);
    return;
  }
  Request wire;
  wire.command = Command::kStats;
  wire.opcode = bin::kStat;
  wire.stats_group = r.stats_group;
  proto::compose_binary_request(wire, b.out());
  b.expect(op, 0, ExpectKind::kUntilStatEnd, MetricCommand::kStats);
}

void Orchestrator::too_large(ClientConnection& conn, const Request& r) {
  auto op = std::make_shared<TooLargeOp>(r);
  track(*op, r);
  conn.enqueue(op);
  if (r.original != Command::kSet) {
    op->respond();
    return;
  }
  Request wire;
  wire.command = Command::kDelete;
  wire.opcode = bin::kDelete;
  wire.key = r.key;
  send_l1(worker_, wire, op, 0, L1Lock::kTake);
}

}  // namespace rend::worker
