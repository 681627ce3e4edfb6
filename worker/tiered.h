// The interpreters of the tier rules (worker/tier_rules.h, docs/tiers.md): `l1l2` on the main
// port, `l1l2batch` on the batch port. A read (KeyRead, one per key of a text line) asks the tier
// its row names first and takes the row's steps after an L2 hit or miss; a write (TieredWrite)
// goes to L2, then takes its row's L1 step. What every request shares (L2 failures, late L1 steps,
// tombstones, race burials) is code in tiered.cc; what differs per command and mode is a row.
//
// Each operation holds its key in the worker's KeyLock from start to finish (shared for plain
// reads, exclusive for writes and gats), so the steps of one request never interleave with
// another request on the same key from this worker.
#pragma once

#include "common/protocol/request.h"

namespace rend::worker {

class ClientConnection;
class Worker;

enum class TierMode : uint8_t { kL1Only, kL1L2, kL1L2Batch };

// Handles the key-based commands (reads, writes, deletes, arithmetic, touch, flush_all) in a
// tiered mode; returns false for the commands the dispatcher answers the same way in every mode.
bool dispatch_tiered(Worker& worker, ClientConnection& conn, const proto::Request& request, TierMode mode);

}  // namespace rend::worker
