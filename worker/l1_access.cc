#include "worker/l1_access.h"

#include <string>

#include "common/protocol/request_compose.h"
#include "worker/backend_connection.h"
#include "worker/backend_pool.h"
#include "worker/chunked_l1.h"
#include "worker/metric_mapping.h"
#include "worker/op.h"
#include "worker/worker.h"

namespace rend::worker {

void send_l1(Worker& worker, const proto::Request& wire, const std::shared_ptr<Op>& op, uint32_t tag, L1Lock lock) {
  if (worker.chunk_store() != nullptr) {
    send_chunked(worker, wire, op, tag, lock);
    return;
  }
  BackendConnection& b = worker.l1().for_key(wire.key);
  if (!b.accepting()) {
    op->on_failure(tag, BackendFailure::kUnavailable);
    return;
  }
  proto::compose_binary_request(wire, b.out());
  b.expect(op, tag, ExpectKind::kSingle, metric_command_for_opcode(wire.opcode));
}

}  // namespace rend::worker
