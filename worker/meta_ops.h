// memcached's meta commands (mg ms md ma mn me) in every mode.
//
// - l1only: memcached executes them. They pass through to it, unchanged but for `q`, on the
//   worker's meta connections (Worker::l1_meta); rend hides what `q` hides, so every request
//   still has exactly one reply to match.
// - l1l2 / l1l2batch: rend-l2 is authoritative and executes them (common/meta_rules.h), keeping
//   the marks that must survive (stale, win token sent, hit before, last access), so stampede
//   protection holds across workers and restarts. An mg that asks only for what an L1 copy holds
//   (value, flags, CAS, size, key, opaque) is answered from L1 when it has a copy, and backfills
//   it from L2 when not (l1l2 only, like get); L1 holds copies only of items without marks. Writes
//   go to L2 first, then L1 follows as for the classic commands (docs/tiers.md).
// - l1only with chunked L1: memcached cannot see chunked values, so the worker executes the
//   command itself on the value it reads, with the same rules as rend-l2 (chunked_meta.cc).
// - mn is answered in place: replies leave in request order, so it follows everything before it.
#pragma once

#include "common/protocol/request.h"

namespace rend::worker {

class ClientConnection;
class Worker;

// True when `request` is a meta command (or a too-large ms) and has been started.
bool dispatch_meta(Worker& worker, ClientConnection& conn, const proto::Request& request);

// Whether a request of this command goes to memcached on the meta connections in l1only (the
// client connection keeps such requests and those on the binary connections from overtaking
// each other).
bool uses_l1_meta_connection(proto::Command command);

}  // namespace rend::worker
