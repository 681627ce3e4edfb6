// Chunked L1 (l1.chunked): values stored in memcached as equal-size items (chunk_format.h), with
// memcached's semantics for every command kept on the logical key.
//
// How each command runs (one ChunkedCommand per logical request):
//   get      read the head; if the value has tail chunks, fetch them all in one pipelined batch.
//            A missing chunk or a wrong token means the head was replaced meanwhile: read again
//            (twice at most), then it is a miss. A head whose chunks are gone is deleted (by CAS).
//   set      one batch on the key's connection: read the old head, store the new chunks,
//            then the head. memcached executes one connection's requests in order, so the head
//            is only ever visible once its chunks are stored. The old value's chunks are then
//            deleted.
//   add      as set, with an add of the head. If the head exists but its value is incomplete
//            (chunks evicted), the key holds nothing, so the add goes on as a compare-and-swap.
//   the rest (replace, cas, append, prepend, incr, decr, touch, gat, delete): read the whole
//            value, apply memcached's rule (common/item_rules.h) to it, and write the outcome
//            with the head's CAS as the condition. If another worker changed the key in between,
//            the condition fails and the command starts again from the read. So every
//            read-modify-write is atomic per key across all workers, as in memcached.
//
// CAS: the head item's memcached CAS is the value's CAS (gets reports it, cas compares it).
// Rewriting the head for touch/gat changes it; memcached's touch keeps it (docs/compatibility.md).
#pragma once

#include <memory>
#include <random>

#include "common/protocol/request.h"
#include "worker/chunk_format.h"
#include "worker/l1_access.h"

namespace rend::worker {

class Op;
class Worker;

// What a worker keeps for chunked L1: the layout and the token source.
class ChunkStore {
 public:
  explicit ChunkStore(size_t item_size);
  const chunks::Layout& layout() const { return layout_; }
  chunks::Token new_token();

 private:
  chunks::Layout layout_;
  std::mt19937_64 random_;
};

void send_chunked(Worker& worker, const proto::Request& wire, const std::shared_ptr<Op>& op, uint32_t tag, L1Lock lock);

}  // namespace rend::worker
