// The fixed set of connections a worker keeps to one backend. A key always maps to the same
// connection (xxHash of the key), which keeps one key's operations in order on the wire.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "worker/backend_connection.h"

namespace rend::worker {

class BackendPool {
 public:
  BackendPool(Worker& worker, Tier tier, const std::string& name, const BackendConfig& config, size_t max_body);
  void start();
  void shutdown();
  bool all_closed() const;

  size_t size() const { return connections_.size(); }
  size_t index_for_key(std::string_view key) const;
  BackendConnection& for_key(std::string_view key) { return *connections_[index_for_key(key)]; }
  BackendConnection& at(size_t i) { return *connections_[i]; }
  void check_deadlines(uint64_t now_ms);

 private:
  std::vector<std::unique_ptr<BackendConnection>> connections_;
};

}  // namespace rend::worker
