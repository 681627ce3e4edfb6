#include "worker/backend_connection.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "common/protocol/request_compose.h"
#include "worker/l1_access.h"
#include "worker/l1_envelope.h"
#include "worker/metric_mapping.h"
#include "worker/worker.h"

namespace rend::worker {

// The libuv handle of one connection attempt. A fresh one per attempt, so a late callback of a
// closed attempt can never touch the next one; `owner` is cleared if the connection goes first.
struct BackendConnection::Socket {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  uv_connect_t connect_req;
  BackendConnection* owner;
};

namespace {

bool is_unix_address(const std::string& a) { return a.starts_with("unix:") || a.find('/') != std::string::npos; }

std::string unix_path(const std::string& a) { return a.starts_with("unix:") ? a.substr(5) : a; }

bool tcp_address(const std::string& a, sockaddr_storage& out) {
  const size_t colon = a.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = a.substr(0, colon);
  const int port = std::atoi(a.c_str() + colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    return uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
  }
  if (host == "localhost") host = "127.0.0.1";
  return uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&out)) == 0;
}

}  // namespace

BackendConnection::BackendConnection(Worker& worker, Tier tier, std::string name, const BackendConfig& config,
                                     size_t max_body)
    : worker_(worker),
      tier_(tier),
      name_(std::move(name)),
      config_(config),
      max_body_(max_body),
      backoff_ms_(static_cast<uint64_t>(config.reconnect_min_ms)) {
  uv_timer_init(worker_.loop(), &reconnect_timer_);
  reconnect_timer_.data = this;
}

BackendConnection::~BackendConnection() {
  if (socket_ != nullptr) socket_->owner = nullptr;
}

void BackendConnection::start() { connect(); }

void BackendConnection::connect() {
  if (state_ == State::kStopped) return;
  state_ = State::kConnecting;
  send_burials();  // queued first, so nothing sent on this connection can read a stale copy
  socket_ = new Socket();
  socket_->owner = this;
  socket_->connect_req.data = socket_;
  int rc;
  auto on_connect = [](uv_connect_t* req, int status) {
    auto* s = static_cast<Socket*>(req->data);
    if (s->owner != nullptr) s->owner->on_connected(status);
  };
  if (is_unix_address(config_.address)) {
    uv_pipe_init(worker_.loop(), &socket_->h.pipe, 0);
    socket_->h.handle.data = socket_;
    uv_pipe_connect(&socket_->connect_req, &socket_->h.pipe, unix_path(config_.address).c_str(), on_connect);
    rc = 0;  // uv_pipe_connect reports errors through the callback
  } else {
    uv_tcp_init(worker_.loop(), &socket_->h.tcp);
    socket_->h.handle.data = socket_;
    sockaddr_storage addr{};
    if (!tcp_address(config_.address, addr)) {
      rc = UV_EINVAL;
    } else {
      uv_tcp_nodelay(&socket_->h.tcp, 1);
      rc = uv_tcp_connect(&socket_->connect_req, &socket_->h.tcp, reinterpret_cast<sockaddr*>(&addr), on_connect);
    }
  }
  if (rc != 0) {
    spdlog::warn("{}: connect to {} failed: {}", name_, config_.address, uv_strerror(rc));
    fail(BackendFailure::kUnavailable, "connect");
  }
}

void BackendConnection::on_connected(int status) {
  if (status != 0) {
    if (!logged_down_) {
      spdlog::warn("{}: cannot connect to {}: {}", name_, config_.address, uv_strerror(status));
      logged_down_ = true;
    }
    fail(BackendFailure::kUnavailable, "connect");
    return;
  }
  if (logged_down_) spdlog::info("{}: connected to {}", name_, config_.address);
  logged_down_ = false;
  state_ = State::kConnected;
  backoff_ms_ = static_cast<uint64_t>(config_.reconnect_min_ms);
  bump(worker_.stats(), counter(Counter::l1_connections_up));
  uv_read_start(
      &socket_->h.stream,
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<Socket*>(h->data)->owner;
        if (self == nullptr) {
          *buf = uv_buf_init(nullptr, 0);
          return;
        }
        *buf = self->in_.next_read();
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* self = static_cast<Socket*>(s->data)->owner;
        if (self != nullptr) self->on_read(nread, buf);
      });
  if (!out_.buffer().empty()) worker_.mark_dirty(this);
}

Counter BackendConnection::counter(Counter c) const {
  if (tier_ != Tier::kL2) return c;
  switch (c) {
    case Counter::l1_requests: return Counter::l2_requests;
    case Counter::l1_errors: return Counter::l2_errors;
    case Counter::l1_timeouts: return Counter::l2_timeouts;
    case Counter::l1_reconnects: return Counter::l2_reconnects;
    case Counter::l1_connections_up: return Counter::l2_connections_up;
    default: return c;
  }
}

void BackendConnection::record_sample(const Expectation& e, Result r, uint64_t now_ns) {
  record_request(worker_.stats().requests, tier_, e.command, r, metric_elapsed_ns(e.sent_ns, now_ns));
}

void BackendConnection::expect(std::shared_ptr<Op> op, uint32_t tag, ExpectKind kind, MetricCommand command) {
  const uint64_t sent = worker_.config().metrics_enabled ? metric_clock_ns() : 0;
  expect_.push_back(Expectation{std::move(op), tag, kind, command,
                                uv_now(worker_.loop()) + static_cast<uint64_t>(config_.timeout_ms), sent});
  bump(worker_.stats(), counter(Counter::l1_requests));
  worker_.mark_dirty(this);
}

void BackendConnection::flush() {
  if (state_ != State::kConnected) return;
  if (out_.flush(&socket_->h.stream, [this](int status, size_t) { on_write_done(status); }) < 0) {
    fail(BackendFailure::kUnavailable, "write");
  }
}

void BackendConnection::on_write_done(int status) {
  if (status < 0) {
    fail(BackendFailure::kUnavailable, "write");
    return;
  }
  flush();
}

void BackendConnection::on_read(ssize_t nread, const uv_buf_t*) {
  if (nread < 0) {
    fail(BackendFailure::kUnavailable, nread == UV_EOF ? "closed by server" : uv_strerror(static_cast<int>(nread)));
    return;
  }
  in_.commit(static_cast<size_t>(nread));
  if (nread > 0) last_read_ms_ = uv_now(worker_.loop());
  process_input();
}

// A connection of meta requests (l1only's meta pool): every expectation is one meta reply.
bool BackendConnection::process_meta_reply() {
  proto::MetaResponse r;
  size_t used = 0;
  const auto parsed = proto::parse_meta_response(in_.unparsed(), max_body_, r, used);
  if (parsed == proto::ResponseParse::kNeedMore) return false;
  if (parsed == proto::ResponseParse::kBad || expect_.empty()) {
    fail(BackendFailure::kUnavailable, "unexpected response");
    return false;
  }
  in_.consume(used);
  const bool until_mn = expect_.front().kind == ExpectKind::kMetaUntilMn;
  std::shared_ptr<Op> op = expect_.front().op;
  const uint32_t tag = expect_.front().tag;
  if (until_mn && r.code != "MN") {
    op->on_meta_response(tag, r);  // the reply q did not hide; MN follows
    return state_ == State::kConnected;
  }
  Expectation head = std::move(expect_.front());
  expect_.pop_front();
  record(head, r.is_error ? Result::kError : (r.code == "EN" || r.code == "NF") ? Result::kMiss : Result::kOk);
  if (until_mn) {
    op->on_complete(tag);
  } else {
    op->on_meta_response(tag, r);
  }
  return state_ == State::kConnected;
}

void BackendConnection::process_input() {
  while (!in_.empty()) {
    if (!expect_.empty() &&
        (expect_.front().kind == ExpectKind::kMeta || expect_.front().kind == ExpectKind::kMetaUntilMn)) {
      if (!process_meta_reply()) return;
      continue;
    }
    proto::BinaryResponse r;
    size_t used = 0;
    const auto parsed = proto::parse_binary_response(in_.unparsed(), max_body_, r, used);
    if (parsed == proto::ResponseParse::kNeedMore) break;
    if (parsed == proto::ResponseParse::kBad || expect_.empty()) {
      fail(BackendFailure::kUnavailable, "unexpected response");
      return;
    }
    in_.consume(used);  // `r` still views the bytes: they move only before the next read
    // Copy what we need: the callback may fail this connection, which clears expect_.
    Expectation& head = expect_.front();
    std::shared_ptr<Op> op = head.op;
    const uint32_t tag = head.tag;
    bool last = true;
    switch (head.kind) {
      case ExpectKind::kSingle:
        record(head, result_for(head.command, r.status()));
        op->on_response(tag, r);
        break;
      case ExpectKind::kUntilNoop:
        if (r.header.opcode == proto::bin::kNoop) {
          record(head, Result::kOk);
          op->on_complete(tag);
        } else {
          op->on_response(tag, r);
          last = false;
        }
        break;
      case ExpectKind::kMeta:
      case ExpectKind::kMetaUntilMn: break;  // process_meta_reply
      case ExpectKind::kUntilStatEnd:
        op->on_response(tag, r);
        last = r.key.empty() || r.status() != proto::bin::kSuccess;
        if (last) {
          record(head, result_for(head.command, r.status()));
          op->on_complete(tag);
        }
        break;
    }
    if (state_ != State::kConnected) return;  // the op's reaction failed us
    if (last) expect_.pop_front();
  }
}

void BackendConnection::check_deadline(uint64_t now_ms) {
  // A backend still sending the answer to a large batch (a chunked value of many items) is slow,
  // not stuck: only the oldest request being overdue *and* silence for the timeout count.
  const uint64_t timeout = static_cast<uint64_t>(config_.timeout_ms);
  if (!expect_.empty() && expect_.front().deadline_ms <= now_ms && last_read_ms_ + timeout <= now_ms) {
    bump(worker_.stats(), counter(Counter::l1_timeouts));
    spdlog::warn("{}: no answer within {} ms; reconnecting", name_, config_.timeout_ms);
    fail(BackendFailure::kTimeout, "timeout");
  }
}

void BackendConnection::fail(BackendFailure why, const char* what) {
  if (state_ == State::kConnected) {
    drop(worker_.stats(), counter(Counter::l1_connections_up));
    spdlog::warn("{}: connection to {} lost ({}); {} requests failed", name_, config_.address, what, expect_.size());
  }
  // Requests of an established connection may have reached the backend before it broke.
  const BackendFailure reported =
      why == BackendFailure::kUnavailable && state_ == State::kConnected ? BackendFailure::kLost : why;
  std::deque<Expectation> failed;
  failed.swap(expect_);
  out_.reset();  // a write in flight on the old socket then changes nothing when it ends
  in_.clear();
  close_socket();
  if (state_ != State::kStopped) {
    state_ = State::kWaiting;
    schedule_reconnect();
  }
  for (auto& e : failed) {
    bump(worker_.stats(), counter(Counter::l1_errors));
    record(e, Result::kError);
    e.op->on_failure(e.tag, reported);
  }
}

void BackendConnection::close_socket() {
  if (socket_ == nullptr) return;
  Socket* s = socket_;
  socket_ = nullptr;
  s->owner = nullptr;
  uv_close(&s->h.handle, [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
}

void BackendConnection::reconnect_now() {
  if (state_ != State::kWaiting) return;
  uv_timer_stop(&reconnect_timer_);
  backoff_ms_ = static_cast<uint64_t>(config_.reconnect_min_ms);
  connect();
}

void BackendConnection::schedule_reconnect() {
  bump(worker_.stats(), counter(Counter::l1_reconnects));
  uv_timer_start(
      &reconnect_timer_, [](uv_timer_t* t) { static_cast<BackendConnection*>(t->data)->connect(); }, backoff_ms_, 0);
  backoff_ms_ = std::min<uint64_t>(backoff_ms_ * 2, static_cast<uint64_t>(config_.reconnect_max_ms));
}

namespace {

// Receives the answer to a burial (of one key, or of all: a flush). One lost with its connection
// is queued for the next one.
class Burial : public Op {
 public:
  Burial(BackendConnection& conn, std::string key, bool all) : conn_(conn), key_(std::move(key)), all_(all) {}
  void on_failure(uint32_t, BackendFailure) override {
    if (all_) {
      conn_.bury_all();
    } else {
      conn_.bury(std::move(key_));
    }
  }
  const std::string& key() const { return key_; }

 private:
  BackendConnection& conn_;
  std::string key_;
  bool all_;
};

}  // namespace

void BackendConnection::bury(std::string key) {
  if (state_ == State::kStopped) return;
  if (to_bury_.size() >= kMaxBuryKeys) {
    bury_all();
    return;
  }
  if (!flush_on_connect_) to_bury_.push_back(std::move(key));
  if (accepting()) send_burials();
}

void BackendConnection::bury_all() {
  if (state_ == State::kStopped) return;
  flush_on_connect_ = true;
  to_bury_.clear();
  if (accepting()) send_burials();
}

void BackendConnection::send_burials() {
  if (flush_on_connect_) {
    flush_on_connect_ = false;
    to_bury_.clear();
    spdlog::warn("{}: more than {} L1 copies may be stale after failed updates; flushing L1", name_, kMaxBuryKeys);
    proto::Request flush;
    flush.command = proto::Command::kFlushAll;
    flush.opcode = proto::bin::kFlush;
    proto::compose_binary_request(flush, out_.buffer());
    expect(std::make_shared<Burial>(*this, std::string(), true), 0, ExpectKind::kSingle, MetricCommand::kFlushAll);
    return;
  }
  // Taken out first: a burial that fails at once queues its key again.
  std::vector<std::string> keys;
  keys.swap(to_bury_);
  for (std::string& key : keys) {
    auto burial = std::make_shared<Burial>(*this, std::move(key), false);
    const proto::Request tombstone = l1_tombstone_request(burial->key(), worker_.config());
    if (worker_.chunk_store() != nullptr) {
      // Chunked L1: a tombstone is an empty value in the chunked layout (a head without
      // chunks), which reads as a miss and refuses an add; a raw empty item would read as a
      // broken head, which the chunked layer deletes.
      send_l1(worker_, tombstone, burial, 0);
    } else {
      proto::compose_binary_request(tombstone, out_.buffer());
      expect(burial, 0, ExpectKind::kSingle, MetricCommand::kSet);
    }
  }
}

void BackendConnection::shutdown() {
  const bool was_connected = state_ == State::kConnected;
  state_ = State::kStopped;
  if (was_connected) drop(worker_.stats(), counter(Counter::l1_connections_up));
  uv_timer_stop(&reconnect_timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&reconnect_timer_), nullptr);
  std::deque<Expectation> failed;
  failed.swap(expect_);
  close_socket();
  for (auto& e : failed) e.op->on_failure(e.tag, BackendFailure::kUnavailable);
}

}  // namespace rend::worker
