// The l1only mode's key commands: each is one request on the L1 connection its key maps to (with
// chunked L1, a ChunkedCommand that answers as if memcached held the value whole), and
// memcached's reply composed from L1's answer. Text requests are translated to the binary
// protocol; binary ones are forwarded in their loud form (a quiet request still needs an answer
// to know it finished) and the reply is suppressed where memcached's quiet semantics say so.
#pragma once

#include "common/protocol/request.h"

namespace rend::worker {

class ClientConnection;
class Worker;

// Any single-key command, and a binary get of any kind.
void l1only_forward(Worker& worker, ClientConnection& conn, const proto::Request& request);
// A text get/gets/gat/gats: one quiet batch per L1 connection (or one read per key with chunked
// L1), the hits merged in key order.
void l1only_multi_get(Worker& worker, ClientConnection& conn, const proto::Request& request);

}  // namespace rend::worker
