// The meta commands in the tiered modes (meta_ops.h): rend-l2 executes them, L1 follows.
#pragma once

#include <string>

#include "common/protocol/meta_command.h"
#include "common/protocol/request.h"
#include "worker/tiered.h"

namespace rend::worker {

class ClientConnection;
class Worker;

// `key` is the decoded key; `options` the request's parsed flags.
void start_tiered_meta(Worker& worker, ClientConnection& conn, const proto::Request& request, TierMode mode,
                       const std::string& key, const proto::MetaOptions& options);

}  // namespace rend::worker
