#include "worker/admin_ops.h"

#include <fmt/format.h>

#include <optional>
#include <vector>

#include "common/local_reply.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/request_compose.h"
#include "worker/backend_pool.h"
#include "worker/client_connection.h"
#include "worker/l1_access.h"
#include "worker/metric_mapping.h"
#include "worker/reply.h"
#include "worker/stats_report.h"
#include "worker/tier_rules.h"
#include "worker/worker.h"

namespace rend::worker {

using proto::append_binary_relay;
using proto::append_binary_status;
using proto::append_line;
using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

namespace {

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
      append_line(reply, failure_                   ? text_failure(*failure_)
                         : status_ == bin::kSuccess ? "OK"
                                                    : "SERVER_ERROR backend error");
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
    reply.clear();  // a binary stats reply may have begun
    append_failure(reply, to_, why);
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
    append_status_reply(reply, to_, bin::kTooLarge, text_);
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

  // Reads the key from L2 (`tiered`, under the worker's key lock) or from L1. memcached judges
  // the cas without reading the item (it stays unfetched, its last access unchanged), so an L1
  // with meta connections is asked with `mg <key> u`, which leaves both marks alone.
  void start(bool tiered, bool lock) {
    auto self = std::static_pointer_cast<CasZeroOp>(self_weak_.lock());
    auto begin = [self, tiered] {
      BackendPool* meta = self->worker_.l1_meta();
      if (!tiered && meta != nullptr) {
        meta->send_batch(meta->index_for_key(self->key_), self, 0, ExpectKind::kMeta, MetricCommand::kCas,
                         [&](std::string& out) { out.append("mg ").append(self->key_).append(" u\r\n"); });
        return;
      }
      Request wire;
      wire.command = Command::kGet;
      wire.opcode = bin::kGetK;
      wire.key = self->key_;
      if (!tiered) {
        send_l1(self->worker_, wire, self, 0, L1Lock::kTake);
        return;
      }
      self->worker_.l2().send(wire, self, 0, MetricCommand::kGet);
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
  void on_meta_response(uint32_t, const proto::MetaResponse& r) override {
    const bool exists = r.code == "HD";
    bump(worker_.stats(), exists ? Counter::cas_badval : Counter::cas_misses);
    result = exists ? Result::kExists : Result::kMiss;
    done(exists ? "EXISTS" : r.code == "EN" ? "NOT_FOUND" : "SERVER_ERROR backend error");
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

}  // namespace

void flush_all(Worker& worker, ClientConnection& conn, const Request& r) {
  // Every connection of every tier: each flush is ordered after the writes already sent on it.
  std::vector<BackendPool*> pools{&worker.l1()};
  if (has_l2(conn.mode())) pools.push_back(&worker.l2());
  size_t total = 0;
  for (BackendPool* pool : pools) total += pool->size();
  auto op = std::make_shared<FanOutOp>(r, static_cast<int>(total));
  track_request(worker, *op, r);
  conn.enqueue(op);
  Request wire;
  wire.command = Command::kFlushAll;
  wire.opcode = bin::kFlush;
  wire.has_exptime = r.has_exptime;
  wire.exptime = r.exptime;
  uint32_t tag = 0;
  for (BackendPool* pool : pools) {
    for (size_t i = 0; i < pool->size(); ++i) {
      pool->send_batch(i, op, tag++, ExpectKind::kSingle, MetricCommand::kFlushAll,
                       [&](std::string& out) { proto::compose_binary_request(wire, out); });
    }
  }
}

void stats_group(Worker& worker, ClientConnection& conn, const Request& r) {
  auto op = std::make_shared<StatsGroupOp>(r, r.stats_group == "reset");
  track_request(worker, *op, r);
  conn.enqueue(op);
  Request wire;
  wire.command = Command::kStats;
  wire.opcode = bin::kStat;
  wire.stats_group = r.stats_group;
  worker.l1().send_batch(0, op, 0, ExpectKind::kUntilStatEnd, MetricCommand::kStats,
                         [&](std::string& out) { proto::compose_binary_request(wire, out); });
}

void too_large(Worker& worker, ClientConnection& conn, const Request& r) {
  auto op = std::make_shared<TooLargeOp>(r);
  track_request(worker, *op, r);
  conn.enqueue(op);
  if (r.original != Command::kSet) {
    op->respond();
    return;
  }
  Request wire;
  wire.command = Command::kDelete;
  wire.opcode = bin::kDelete;
  wire.key = r.key;
  send_l1(worker, wire, op, 0, L1Lock::kTake);
}

void answer_locally(Worker& worker, ClientConnection& conn, const Request& r) {
  auto op = std::make_shared<Op>();
  track_request(worker, *op, r);
  conn.enqueue(op);
  op->close_after = r.close_after;
  if (r.command == Command::kError || r.command == Command::kUnknown || r.command == Command::kGetE) {
    op->result = Result::kError;
  }
  append_local_reply(op->reply, r);
  op->finish();
}

void stats(Worker& worker, ClientConnection& conn, const Request& r) {
  if (!r.stats_group.empty()) {
    stats_group(worker, conn, r);
    return;
  }
  auto op = std::make_shared<StatsOp>(worker, r);
  track_request(worker, *op, r);
  conn.enqueue(op);
  op->finish();
}

void cas_zero(Worker& worker, ClientConnection& conn, const Request& r) {
  auto op = std::make_shared<CasZeroOp>(worker, r);
  op->self_weak_ = op;
  track_request(worker, *op, r);
  conn.enqueue(op);
  const bool tiered = has_l2(conn.mode());
  op->start(tiered, tiered && worker.config().worker.key_ordering);
}

}  // namespace rend::worker
