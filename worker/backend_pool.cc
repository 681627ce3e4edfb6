#include "worker/backend_pool.h"

#include <xxhash.h>

#include "common/protocol/request_compose.h"
#include "worker/backend_connection.h"
#include "worker/metric_mapping.h"

namespace rend::worker {

BackendPool::BackendPool(Worker& worker, Tier tier, const BackendConfig& config, size_t max_body,
                         const BackendFactory& factory) {
  for (int i = 0; i < config.connections; ++i) {
    connections_.push_back(factory(worker, tier, static_cast<size_t>(i), config, max_body));
  }
}

BackendFactory real_backends() {
  return [](Worker& worker, Tier tier, size_t index, const BackendConfig& config, size_t max_body) {
    const std::string name = std::string(tier == Tier::kL1 ? "l1" : "l2") + "[" + std::to_string(index) + "]";
    return std::make_unique<BackendConnection>(worker, tier, name, config, max_body);
  };
}

void BackendPool::start() {
  for (auto& c : connections_) c->start();
}

void BackendPool::shutdown() {
  for (auto& c : connections_) c->shutdown();
  holding_ = false;
  std::deque<Held> held;
  held.swap(held_);
  for (Held& h : held) h.op->on_failure(h.tag, BackendFailure::kUnavailable);
}

bool BackendPool::idle() const { return held_.empty() && answered_all(); }

bool BackendPool::answered_all() const {
  for (const auto& c : connections_) {
    if (!c->idle()) return false;
  }
  return true;
}

size_t BackendPool::index_for_key(std::string_view key) const {
  if (connections_.size() == 1) return 0;
  return static_cast<size_t>(XXH3_64bits(key.data(), key.size()) % connections_.size());
}

void BackendPool::check_deadlines(uint64_t now_ms) {
  for (auto& c : connections_) c->check_deadline(now_ms);
}

void BackendPool::send(const proto::Request& wire, const std::shared_ptr<Op>& op, uint32_t tag) {
  send(wire, op, tag, metric_command_for_opcode(wire.opcode));
}

void BackendPool::send(const proto::Request& wire, const std::shared_ptr<Op>& op, uint32_t tag, MetricCommand command) {
  send_batch(index_for_key(wire.key), op, tag, ExpectKind::kSingle, command,
             [&](std::string& out) { proto::compose_binary_request(wire, out); });
}

void BackendPool::send_composed(std::string_view key, std::string_view bytes, const std::shared_ptr<Op>& op,
                                uint32_t tag, MetricCommand command) {
  send_batch(index_for_key(key), op, tag, ExpectKind::kSingle, command, [&](std::string& out) { out.append(bytes); });
}

void BackendPool::release() {
  if (!holding_) return;
  holding_ = false;
  for (auto& c : connections_) c->reconnect_now();
  std::deque<Held> held;
  held.swap(held_);
  for (Held& h : held) {
    send_batch(h.index, h.op, h.tag, h.kind, h.command, [&](std::string& out) { out.append(h.bytes); });
  }
}

void BackendPool::bury(std::string key) {
  const size_t i = index_for_key(key);
  connections_[i]->bury(std::move(key));
}

void BackendPool::bury_all() { connections_[0]->bury_all(); }

}  // namespace rend::worker
