// The L1/L2 orchestrations (DESIGN §4): `l1l2` on the main port, `l1l2batch` on the batch port.
//
// L2 is authoritative: every write goes to L2 first and is acknowledged only if L2 took it; L1
// is then brought in line (set, replace, or deleted when it cannot be). Reads try L1 first; an
// L1 miss is read from L2 and, on the main port, copied into L1 with `add` and L2's absolute
// expiry (an add never overwrites a value a concurrent write just put there). While L2 is
// unreachable, reads are served by L1 alone and writes fail with SERVER_ERROR.
//
// Each operation holds its key in the worker's KeyLock from start to finish (shared for reads,
// exclusive for writes), so the L2-then-L1 steps of one request never interleave with another
// request on the same key from this worker.
#pragma once

#include "common/protocol/request.h"

namespace rend::worker {

class ClientConnection;
class Worker;

enum class TierMode : uint8_t { kL1Only, kL1L2, kL1L2Batch };

// Handles the key-based commands (reads, writes, deletes, arithmetic, touch, flush_all) in a
// tiered mode; returns false for the commands the plain orchestrator answers itself.
bool dispatch_tiered(Worker& worker, ClientConnection& conn, const proto::Request& request, TierMode mode);

}  // namespace rend::worker
