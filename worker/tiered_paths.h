// The two paths of the tiered modes, each interpreting its rows of worker/tier_rules.h:
// a read (one KeyRead per key; a text line of several keys answered in key order by a MultiRead)
// and a write (a TieredWrite: L2 first, then the row's L1 step).
#pragma once

#include "common/protocol/request.h"
#include "worker/tier_rules.h"

namespace rend::worker {

class ClientConnection;
class Worker;

void start_tiered_read(Worker& worker, ClientConnection& conn, const proto::Request& request, const ReadRule& rule);
void start_tiered_write(Worker& worker, ClientConnection& conn, const proto::Request& request, const WriteRule& rule);

}  // namespace rend::worker
