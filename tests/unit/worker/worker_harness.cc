#include "tests/unit/worker/worker_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>

#include "common/config.h"
#include "common/shared_stats.h"
#include "common/uv_loop_close.h"

namespace rend::worker::testing {

namespace {

nlohmann::json base_config() {
  return {
      {"workers", 1},
      {"l1", {{"address", "/nonexistent/l1.sock"}, {"connections", 1}}},
      {"l2", {{"enabled", true}, {"address", "/nonexistent/l2.sock"}, {"connections", 1}}},
      {"memcached", {{"enabled", false}}},
  };
}

Config make_config(const nlohmann::json& overrides) {
  nlohmann::json merged = base_config();
  merged.merge_patch(overrides);
  Config config;
  const Status parsed = parse_config(merged, config);
  EXPECT_TRUE(parsed) << parsed.message();
  return config;
}

}  // namespace

int WorkerHarness::listen_socket(int& port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(listen(fd, 64), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

WorkerHarness::WorkerHarness(const nlohmann::json& config) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop_);
  SharedStats stats;
  EXPECT_GE(SharedStats::create(stats), 0);
  WorkerOptions options;
  options.tcp_listen_fd = listen_socket(port_);
  options.batch_listen_fd = listen_socket(batch_port_);
  BackendFactory fakes = [this](Worker&, Tier tier, size_t index, const BackendConfig&, size_t) {
    auto fake =
        std::make_unique<FakeBackend>(&loop_, (tier == Tier::kL1 ? "l1[" : "l2[") + std::to_string(index) + "]");
    (tier == Tier::kL1 ? l1_ : l2_).push_back(fake.get());
    return fake;
  };
  worker_ = std::make_unique<Worker>(&loop_, make_config(config), options, std::move(stats), fakes);
  EXPECT_TRUE(worker_->start());
}

WorkerHarness::~WorkerHarness() {
  for (int fd : clients_) close(fd);
  run_for(5);  // the worker sees the clients go
  close_loop(&loop_);
  worker_.reset();
}

int WorkerHarness::connect(bool batch) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(batch ? batch_port_ : port_));
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  clients_.push_back(fd);
  return fd;
}

void WorkerHarness::send(int fd, std::string_view request) {
  size_t sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (sent < request.size() && std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, 0);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else {
      run_once(1);  // the worker reads, making room
    }
  }
  ASSERT_EQ(sent, request.size()) << "the worker stopped reading";
}

std::string WorkerHarness::call(int fd, std::string_view request, std::string_view until) {
  send(fd, request);
  std::string reply;
  const bool complete = run_until([&] {
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, static_cast<size_t>(n));
    return reply.size() >= until.size() && reply.ends_with(until);
  });
  EXPECT_TRUE(complete) << "no complete reply to " << request.substr(0, 80) << "; got: " << reply;
  return reply;
}

std::string WorkerHarness::call(std::string_view request, std::string_view until) {
  if (main_client_ < 0) main_client_ = connect();
  return call(main_client_, request, until);
}

void WorkerHarness::run_once(int wait_ms) {
  // Wait for the loop's own events (or its next timer) but no longer than `wait_ms`: the client
  // sockets are the test's, outside the loop.
  int timeout = uv_backend_timeout(&loop_);
  if (timeout < 0 || timeout > wait_ms) timeout = wait_ms;
  pollfd p{uv_backend_fd(&loop_), POLLIN, 0};
  poll(&p, 1, timeout);
  uv_run(&loop_, UV_RUN_NOWAIT);
}

bool WorkerHarness::run_until(const std::function<bool()>& done, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    run_once(1);
  }
  return true;
}

void WorkerHarness::run_for(int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) run_once(1);
}

}  // namespace rend::worker::testing
