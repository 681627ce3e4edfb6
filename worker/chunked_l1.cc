#include "worker/chunked_l1.h"

#include "worker/chunked_command.h"

#include <sys/random.h>

#include <cstring>
#include <ctime>
#include <optional>
#include <string>

#include "common/item_rules.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/reply_compose.h"
#include "common/protocol/request_compose.h"
#include "worker/backend_pool.h"
#include "worker/key_lock.h"
#include "worker/op.h"
#include "worker/reply.h"
#include "worker/worker.h"

namespace rend::worker {

using proto::Command;
using proto::Request;
namespace bin = proto::bin;

ChunkStore::ChunkStore(size_t item_size) : layout_(item_size) {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) seed = std::random_device{}();
  random_.seed(seed);
}

chunks::Token ChunkStore::new_token() {
  chunks::Token t;
  const uint64_t a = random_();
  const uint64_t b = random_();
  std::memcpy(t.data(), &a, 8);
  std::memcpy(t.data() + 8, &b, 8);
  return t;
}

void send_chunked(Worker& worker, const Request& wire, const std::shared_ptr<Op>& op, uint32_t tag, L1Lock lock) {
  auto command = std::make_shared<ChunkedCommand>(worker, *worker.chunk_store(), wire, op, tag);
  command->self_weak_ = command;
  command->start(lock);
}

}  // namespace rend::worker
