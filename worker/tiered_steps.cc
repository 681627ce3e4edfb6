#include "worker/tiered_steps.h"

#include <uv.h>

#include "common/protocol/binary_format.h"
#include "common/protocol/request_compose.h"
#include "worker/backend_pool.h"
#include "worker/metric_mapping.h"
#include "worker/worker.h"

namespace rend::worker {

using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

Request wire_request(Command command, uint8_t opcode, std::string_view key) {
  Request w;
  w.command = command;
  w.opcode = opcode;
  w.key = key;
  return w;
}

void bury_again_if_raced(Worker& worker, std::string_view key, const proto::BinaryResponse& r) {
  if ((r.header.data_type & bin::kDataTypeRacedWrite) == 0) return;
  bump(worker.stats(), Counter::raced_writes);
  worker.bury_after_race_window(std::string(key));
}

bool landed_in_time(Worker& worker, uint64_t l2_sent_ns) {
  const Config& c = worker.config();
  const uint64_t limit_ms = static_cast<uint64_t>(c.l1.timeout_ms) + static_cast<uint64_t>(c.l2.backend.timeout_ms);
  return (uv_hrtime() - l2_sent_ns) / 1000000 <= limit_ms;
}

}  // namespace rend::worker
