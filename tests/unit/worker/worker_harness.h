// A whole rend-worker in the test's own process: the real Worker (dispatcher, tier rules, client
// connections, key locks, burials) on a loop the test drives, with a FakeBackend for each of its
// L1 and L2 connections. Clients connect over loopback TCP to the main and batch listeners.
//
// Everything runs on the test's thread: call() writes a request, then runs the loop until the
// reply is complete, so a test scripts the backends between steps and sees exactly what each
// tier was asked. A reply that does not come within two seconds fails the test (never a hang).
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tests/unit/worker/fake_backend.h"
#include "worker/worker.h"

namespace rend::worker::testing {

class WorkerHarness {
 public:
  // `config` is merged over a small configuration: L2 on, one connection per backend.
  explicit WorkerHarness(const nlohmann::json& config = nlohmann::json::object());
  ~WorkerHarness();
  WorkerHarness(const WorkerHarness&) = delete;
  WorkerHarness& operator=(const WorkerHarness&) = delete;

  FakeBackend& l1(size_t i = 0) { return *l1_.at(i); }
  FakeBackend& l2(size_t i = 0) { return *l2_.at(i); }
  Worker& worker() { return *worker_; }

  // A new client connection to the main port (l1l2, or l1only without L2) or the batch port.
  int connect(bool batch = false);
  // Sends `request` on `fd` and returns what the worker answers, read until it ends with
  // `until` (for a text get, "END\r\n"; by default one line).
  std::string call(int fd, std::string_view request, std::string_view until = "\r\n");
  // The same on a connection of its own to the main port, opened on first use.
  std::string call(std::string_view request, std::string_view until = "\r\n");
  // Sends without waiting for a reply.
  void send(int fd, std::string_view request);
  // Runs the loop until `done()` or `timeout_ms` pass; returns done().
  bool run_until(const std::function<bool()>& done, int timeout_ms = 2000);
  // Runs the loop for `ms` milliseconds.
  void run_for(int ms);

 private:
  void run_once(int wait_ms);
  int listen_socket(int& port);

  uv_loop_t loop_;
  std::vector<FakeBackend*> l1_;  // owned by the worker's pools
  std::vector<FakeBackend*> l2_;
  std::unique_ptr<Worker> worker_;
  int port_ = 0;
  int batch_port_ = 0;
  int main_client_ = -1;
  std::vector<int> clients_;
};

}  // namespace rend::worker::testing
