// The meta commands' l1only path and the dispatch of every mode (meta_ops.h); the tiered path is
// tiered_meta.cc.
#include "worker/meta_ops.h"

#include <fmt/format.h>

#include <memory>
#include <string>

#include "common/meta_rules.h"
#include "common/protocol/meta_command.h"
#include "common/protocol/meta_wire.h"
#include "common/protocol/reply_compose.h"
#include "worker/admin_ops.h"
#include "worker/backend_pool.h"
#include "worker/client_connection.h"
#include "worker/l1_access.h"
#include "worker/metric_mapping.h"
#include "worker/reply.h"
#include "worker/tiered.h"
#include "worker/tiered_meta.h"
#include "worker/worker.h"

namespace rend::worker {

using proto::Command;
using proto::Request;

namespace {

// One meta request passed to memcached, its reply passed back. A quiet one goes with an mn after
// it, so memcached itself decides what q hides and MN says it has answered.
class MetaForwardOp : public Op {
 public:
  void on_meta_response(uint32_t, const proto::MetaResponse& r) override {
    result = meta_result(command, r.code);
    reply.append(r.bytes);
    if (!quiet) finish();
  }

  void on_complete(uint32_t) override { finish(); }

  void on_failure(uint32_t, BackendFailure why) override {
    result = Result::kError;
    reply.clear();
    proto::append_line(reply, text_failure(why));  // errors are never hidden by q
    finish();
  }

  bool quiet = false;
  Command command = Command::kMetaGet;
};

// What memcached gets: the client's request as it was parsed (a quiet one followed by mn).
std::string forward_line(const Request& r) {
  static constexpr std::string_view kNames[] = {"mg", "ms", "md", "ma", "mn", "me"};
  const auto name = kNames[static_cast<size_t>(r.command) - static_cast<size_t>(Command::kMetaGet)];
  std::string out;
  out.reserve(16 + r.key.size() + r.meta_flags.size() + r.value.size());
  out.append(name).append(" ").append(r.key);
  if (r.command == Command::kMetaSet) out += fmt::format(" {}", r.value.size());
  const std::string flags = proto::meta_flags_without(r.meta_flags, "");
  if (!flags.empty()) out.append(" ").append(flags);
  out += "\r\n";
  if (r.command == Command::kMetaSet) out.append(r.value).append("\r\n");
  if (r.quiet) out += "mn\r\n";
  return out;
}

void forward_to_memcached(Worker& worker, ClientConnection& conn, const Request& r, const std::string& key) {
  auto op = std::make_shared<MetaForwardOp>();
  op->quiet = r.quiet;
  op->command = r.command;
  track_request(worker, *op, r);
  conn.enqueue(op);
  const std::string line = forward_line(r);
  const size_t index = worker.l1_meta()->index_for_key(key);
  worker.l1_meta()->send_batch(index, op, 0, r.quiet ? ExpectKind::kMetaUntilMn : ExpectKind::kMeta,
                               metric_command_for(r.command), [&](std::string& out) { out += line; });
}

// l1only with chunked L1: the worker executes the command on the chunked value (chunked_meta.cc)
// and gets back what rend-l2 would answer.
class ChunkedMetaOp : public Op {
 public:
  ChunkedMetaOp(Command command, bool quiet) : command_(command), quiet_(quiet) {}

  void on_response(uint32_t, const proto::BinaryResponse& r) override {
    proto::MetaSummary s;
    if (r.header.opcode != proto::bin::kMeta || r.status() != proto::bin::kSuccess ||
        !proto::decode_meta_summary(r.extras, s)) {
      result = Result::kError;
      proto::append_line(reply, fmt::format("SERVER_ERROR {}", proto::bin::status_message(r.status())));
    } else {
      result = meta_result(command_, std::string_view(r.value).substr(0, 2));
      if (static_cast<MetaCode>(s.code) == MetaCode::kError) result = Result::kError;
      if (!(quiet_ && s.suppressible)) reply.assign(r.value);
    }
    finish();
  }

  void on_failure(uint32_t, BackendFailure why) override {
    result = Result::kError;
    proto::append_line(reply, text_failure(why));
    finish();
  }

 private:
  Command command_;
  bool quiet_;
};

void execute_on_chunks(Worker& worker, ClientConnection& conn, const Request& r, const std::string& key) {
  auto op = std::make_shared<ChunkedMetaOp>(r.command, r.quiet);
  track_request(worker, *op, r);
  conn.enqueue(op);
  Request wire;
  wire.command = r.command;
  wire.opcode = proto::bin::kMeta;
  wire.key = key;
  wire.meta_flags = r.meta_flags;
  wire.value = r.value;
  send_l1(worker, wire, op, 0, L1Lock::kTake);
}

}  // namespace

bool uses_l1_meta_connection(Command command) {
  switch (command) {
    case Command::kMetaGet:
    case Command::kMetaSet:
    case Command::kMetaDelete:
    case Command::kMetaArithmetic:
    case Command::kMetaDebug: return true;
    default: return false;
  }
}

bool dispatch_meta(Worker& worker, ClientConnection& conn, const Request& r) {
  const bool too_large_ms = r.command == Command::kTooLarge && r.original == Command::kMetaSet;
  if (!uses_l1_meta_connection(r.command) && !too_large_ms) return false;
  // The parser accepted the flags, and with them the key's base64.
  proto::MetaOptions options;
  std::string_view error;
  const bool base64 = r.command == Command::kMetaDebug
                          ? !r.meta_flags.empty()
                          : proto::parse_meta_options(r.command == Command::kTooLarge ? Command::kMetaSet : r.command,
                                                      r.key, r.meta_flags, options, error) &&
                                options.base64;
  const std::string key = proto::meta_key(r.key, base64).value_or(std::string(r.key));
  if (too_large_ms) {
    // Like a too-large set: refused, and the old value goes (in every tier).
    Request as_set = r;
    as_set.key = key;
    as_set.original = Command::kSet;
    if (conn.mode() == TierMode::kL1Only) {
      too_large(worker, conn, as_set);
    } else {
      dispatch_tiered(worker, conn, as_set, conn.mode());
    }
    return true;
  }
  if (conn.mode() != TierMode::kL1Only) {
    start_tiered_meta(worker, conn, r, conn.mode(), key, options);
  } else if (worker.l1_meta() != nullptr) {
    if (key.find('\n') != std::string::npos) {
      // memcached would echo such a key raw (k, me) and cut its reply in two: on a connection
      // shared by many clients that would hand every later reply to the wrong one. (A CR alone
      // does not end a reply line: memcached and rend serve keys holding one.)
      Request e = r;
      e.command = Command::kError;
      e.quiet = false;
      e.error_text = "CLIENT_ERROR bad command line format";
      answer_locally(worker, conn, e);
      return true;
    }
    forward_to_memcached(worker, conn, r, key);
  } else {
    execute_on_chunks(worker, conn, r, key);
  }
  return true;
}

}  // namespace rend::worker
