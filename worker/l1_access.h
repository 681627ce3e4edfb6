// The one way the l1only ops and the tier rules' interpreters talk to L1 about a key: send_l1() takes a binary request
// (a loud get/getk, gat/gatk, set/add/replace with or without a CAS, append/prepend, delete, incr/decr or touch) and
// delivers exactly one response to `op` under `tag`, worded as memcached words it, or one failure.
//
// With plain L1 that is one request on the key's connection. With l1.chunked it is a
// ChunkedCommand (chunked_l1.h), which stores the value as equal-size items and answers as if
// memcached held the value whole, so the l1only ops and the tiered paths are the same code in
// both layouts.
#pragma once

#include <cstdint>
#include <memory>

#include "common/protocol/request.h"

namespace rend::worker {

class Op;
class Worker;

// `exclusive_lock`/`shared_lock`: in l1only mode a chunked operation takes several round trips,
// so it holds the key in the worker's KeyLock (like the tiered modes do around their steps) to
// keep a client's pipelined requests on one key in order. Tiered callers already hold it.
enum class L1Lock : uint8_t { kNone, kTake };

void send_l1(Worker& worker, const proto::Request& wire, const std::shared_ptr<Op>& op, uint32_t tag,
             L1Lock lock = L1Lock::kNone);

}  // namespace rend::worker
