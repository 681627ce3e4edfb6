// The steps every tiered path shares: composing a backend request (BackendPool sends it), and
// the race checks that decide whether an L1 copy must be buried again.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/protocol/command_traits.h"
#include "common/protocol/request.h"
#include "common/protocol/response_parser.h"
#include "common/request_metrics.h"

namespace rend::worker {

class BackendPool;
class Op;
class Worker;

// An item read from a tier, as a reply needs it.
struct Item {
  uint32_t flags = 0;
  uint64_t cas = 0;
  uint32_t expiry = 0;  // absolute unix seconds, 0 = never (from L2's GetE)
  std::string value;
};

enum class Outcome : uint8_t { kHit, kMiss, kFailed };

proto::Request wire_request(proto::Command command, uint8_t opcode, std::string_view key);

// rend-l2 flags a tracked write that came within the race window after another worker's
// tracked access to the key, a write or a read it backfills (l2/write_history.h): that worker's
// L1 step may land after ours, so L1's copy is buried again once the window has passed.
void bury_again_if_raced(Worker& worker, std::string_view key, const proto::BinaryResponse& r);

// Whether an L1 step that has just completed landed as soon after the L2 request it follows
// (sent at `l2_sent_ns`, uv_hrtime) as common/race_window.h assumes. One that did not (a stalled
// worker, a slow memcached) may have landed after a racing worker's delayed burial, so the
// caller buries the key itself.
bool landed_in_time(Worker& worker, uint64_t l2_sent_ns);

inline bool is_touching(proto::Command c) { return proto::traits(c).touches; }
inline bool wants_cas(proto::Command c) { return proto::traits(c).returns_cas; }

}  // namespace rend::worker
