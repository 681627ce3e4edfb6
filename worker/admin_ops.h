// The commands that are about the server rather than a key's value, answered the same way in
// every mode: flush_all (every backend connection of every tier), stats, a set too large for the
// cache, text `cas` with unique 0, and the replies rend composes itself (version, verbosity, noop,
// quit, protocol errors).
#pragma once

#include "common/protocol/request.h"

namespace rend::worker {

class ClientConnection;
class Worker;

// Every connection of every tier: each flush is ordered after the writes already sent on it (the
// client connection holds its other requests around it, client_connection.cc).
void flush_all(Worker& worker, ClientConnection& conn, const proto::Request& request);
// Plain `stats` is rend's own counters; `stats <group>` relays L1's report.
void stats(Worker& worker, ClientConnection& conn, const proto::Request& request);
// l1only: memcached drops the old value of a set that was too large (so a reader never sees data
// older than a refused write), then reports the error. (The tiered modes do it through L2.)
void too_large(Worker& worker, ClientConnection& conn, const proto::Request& request);
// Text `cas` with unique 0: EXISTS or NOT_FOUND from a plain read, nothing stored.
void cas_zero(Worker& worker, ClientConnection& conn, const proto::Request& request);
// version, verbosity, noop, quit, GetE in l1only, and the parser's error replies.
void answer_locally(Worker& worker, ClientConnection& conn, const proto::Request& request);

}  // namespace rend::worker
