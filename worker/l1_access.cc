#include "worker/l1_access.h"

#include <string>

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
  worker.l1().send(wire, op, tag);
}

}  // namespace rend::worker
