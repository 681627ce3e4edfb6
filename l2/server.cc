#include "l2/server.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "common/get_reply_limit.h"
#include "l2/connection.h"

namespace rend::l2 {

namespace {

EngineInfo engine_info(const L2Options& o) {
  EngineInfo info;
  info.started_unix = static_cast<int64_t>(time(nullptr));
  info.threads = o.threads;
  info.max_item_size = o.max_item_size;
  info.max_get_reply = max_get_reply_bytes(o.max_item_size, o.output_high_water);
  info.race_window_ms = o.race_window_ms;
  info.races_unknown_until_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count() +
      o.race_start_window_ms;
  info.socket_path = o.socket_path;
  info.tcp_port = o.tcp_port;
  return info;
}

void close_and_free(uv_handle_t* h) {
  if (uv_is_closing(h)) return;
  uv_close(h, [](uv_handle_t* h) {
    if (h->type == UV_TCP) {
      delete reinterpret_cast<uv_tcp_t*>(h);
    } else {
      delete reinterpret_cast<uv_pipe_t*>(h);
    }
  });
}

}  // namespace

Server::Server(uv_loop_t* loop, L2Options options, Store& store, SharedStats shared)
    : loop_(loop),
      options_(std::move(options)),
      store_(store),
      shared_(std::move(shared)),
      engine_(store, stats_, engine_info(options_)) {}

Server::~Server() = default;

bool Server::start_listening(uv_stream_t* s, bool tcp) {
  s->data = this;
  auto cb = tcp ? static_cast<uv_connection_cb>([](uv_stream_t* server, int status) {
    if (status == 0) static_cast<Server*>(server->data)->on_new_connection(server, true);
  })
                : static_cast<uv_connection_cb>([](uv_stream_t* server, int status) {
                    if (status == 0) static_cast<Server*>(server->data)->on_new_connection(server, false);
                  });
  const int rc = uv_listen(s, options_.backlog, cb);
  if (rc != 0) spdlog::error("listen: {}", uv_strerror(rc));
  return rc == 0;
}

bool Server::listen_unix() {
  const std::string& path = options_.socket_path;
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    // A socket file left by a previous run that died: nothing listens on it any more (RocksDB's
    // lock on the data directory already guarantees no other rend-l2 of ours is running).
    if (!S_ISSOCK(st.st_mode)) {
      spdlog::error("{} exists and is not a socket", path);
      return false;
    }
    if (unlink(path.c_str()) != 0) {
      spdlog::error("cannot remove stale socket {}: {}", path, strerror(errno));
      return false;
    }
  }
  auto* h = new uv_pipe_t;
  uv_pipe_init(loop_, h, 0);
  listeners_.push_back(reinterpret_cast<uv_handle_t*>(h));
  const int rc = uv_pipe_bind(h, path.c_str());
  if (rc != 0) {
    spdlog::error("cannot bind {}: {}", path, uv_strerror(rc));
    return false;
  }
  // Owner only, as the supervisor gives memcached's socket (-a 0700): the cache is not for
  // other local users.
  if (chmod(path.c_str(), 0700) != 0) spdlog::warn("chmod {}: {}", path, strerror(errno));
  return start_listening(reinterpret_cast<uv_stream_t*>(h), false);
}

bool Server::listen_tcp() {
  auto* h = new uv_tcp_t;
  uv_tcp_init(loop_, h);
  listeners_.push_back(reinterpret_cast<uv_handle_t*>(h));
  sockaddr_in addr{};
  int rc = uv_ip4_addr(options_.tcp_host.c_str(), options_.tcp_port, &addr);
  if (rc == 0) rc = uv_tcp_bind(h, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc != 0) {
    spdlog::error("cannot bind {}:{}: {}", options_.tcp_host, options_.tcp_port, uv_strerror(rc));
    return false;
  }
  return start_listening(reinterpret_cast<uv_stream_t*>(h), true);
}

void Server::on_new_connection(uv_stream_t* server, bool tcp) {
  auto* c = new Connection(*this, tcp);
  if (uv_accept(server, c->stream()) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(c->stream()),
             [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
    return;
  }
  connections_.insert(c);
  stats_.add(L2Counter::curr_connections);
  stats_.add(L2Counter::total_connections);
  if (draining_) {
    c->close();
    return;
  }
  if (tcp) uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(c->stream()), 1);
  c->start();
}

void Server::on_connection_closed(Connection* c) {
  connections_.erase(c);
  stats_.sub(L2Counter::curr_connections);
  delete c;
  maybe_finish();
}

void Server::begin_drain() {
  if (draining_) return;
  draining_ = true;
  spdlog::info("stopping: draining {} connections", connections_.size());
  for (uv_handle_t* h : listeners_) close_and_free(h);
  listeners_.clear();
  uv_timer_start(
      &drain_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Server*>(t->data);
        spdlog::warn("{} connections still busy after {} ms; closing them", self->connections_.size(), kDrainTimeoutMs);
        std::vector<Connection*> all(self->connections_.begin(), self->connections_.end());
        for (Connection* c : all) c->close();
      },
      kDrainTimeoutMs, 0);
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* c : all) c->drain();
  maybe_finish();
}

void Server::maybe_finish() {
  if (!draining_ || finished_ || !connections_.empty()) return;
  finished_ = true;
  if (gauges_) gauges_->stop();
  // No connection is left, so no batch is queued or running.
  executor_->shutdown();
  uv_timer_stop(&drain_timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&budget_refill_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  spdlog::info("drained");
}

void Server::refill_inline_budget() {
  inline_budget_.read_keys = options_.inline_mode != InlineMode::kOff ? kInlineReadKeys : 0;
  inline_budget_.write_keys = options_.inline_mode == InlineMode::kAll ? kInlineWriteKeys : 0;
  inline_budget_.write_bytes = options_.inline_mode == InlineMode::kAll ? kInlineWriteBytes : 0;
}

int Server::run() {
  executor_ = std::make_unique<Executor>(loop_, options_.threads);
  uv_timer_init(loop_, &drain_timer_);
  drain_timer_.data = this;
  // Before each wait for I/O: the callbacks of the coming turn share a fresh inline budget.
  refill_inline_budget();
  uv_prepare_init(loop_, &budget_refill_);
  budget_refill_.data = this;
  uv_prepare_start(&budget_refill_, [](uv_prepare_t* h) { static_cast<Server*>(h->data)->refill_inline_budget(); });
  uv_unref(reinterpret_cast<uv_handle_t*>(&budget_refill_));
  uv_signal_init(loop_, &sigterm_);
  sigterm_.data = this;
  uv_signal_start(
      &sigterm_, [](uv_signal_t* h, int) { static_cast<Server*>(h->data)->begin_drain(); }, SIGTERM);
  uv_signal_init(loop_, &sigint_);
  sigint_.data = this;
  uv_signal_start(
      &sigint_, [](uv_signal_t* h, int) { static_cast<Server*>(h->data)->begin_drain(); }, SIGINT);

  bool ok = true;
  if (!options_.socket_path.empty()) ok = listen_unix();
  if (ok && options_.tcp_port != 0) ok = listen_tcp();
  if (!ok) {
    begin_drain();
    uv_run(loop_, UV_RUN_DEFAULT);
    return 1;
  }
  if (shared_.block() != nullptr) {
    gauges_ = std::make_unique<GaugePublisher>(loop_, *executor_, store_, stats_, std::move(shared_));
    gauges_->start();
  }
  if (options_.ready_fd >= 0) {
    const char msg[] = "ready\n";
    if (write(options_.ready_fd, msg, sizeof msg - 1) < 0) spdlog::warn("cannot signal readiness: {}", strerror(errno));
    ::close(options_.ready_fd);
  }
  spdlog::info("rend-l2 serving on {}{}{} with {} threads", options_.socket_path,
               options_.tcp_port != 0 ? " and " + options_.tcp_host + ":" : std::string(),
               options_.tcp_port != 0 ? std::to_string(options_.tcp_port) : std::string(), options_.threads);
  uv_run(loop_, UV_RUN_DEFAULT);
  return 0;
}

}  // namespace rend::l2
