#include "worker/backend_pool.h"

#include <xxhash.h>

namespace rend::worker {

BackendPool::BackendPool(Worker& worker, Tier tier, const std::string& name, const BackendConfig& config,
                         size_t max_body) {
  for (int i = 0; i < config.connections; ++i) {
    connections_.push_back(
        std::make_unique<BackendConnection>(worker, tier, name + "[" + std::to_string(i) + "]", config, max_body));
  }
}

void BackendPool::start() {
  for (auto& c : connections_) c->start();
}

void BackendPool::shutdown() {
  for (auto& c : connections_) c->shutdown();
}

size_t BackendPool::index_for_key(std::string_view key) const {
  if (connections_.size() == 1) return 0;
  return static_cast<size_t>(XXH3_64bits(key.data(), key.size()) % connections_.size());
}

void BackendPool::check_deadlines(uint64_t now_ms) {
  for (auto& c : connections_) c->check_deadline(now_ms);
}

}  // namespace rend::worker
