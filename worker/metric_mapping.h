// How requests and backend outcomes map onto the metric labels (command, result).
#pragma once

#include <cstdint>

#include "common/protocol/request.h"
#include "common/request_metrics.h"

namespace rend::worker {

MetricCommand metric_command_for(proto::Command command);
MetricCommand metric_command_for_opcode(uint8_t binary_opcode);
// The result label of a memcached binary status for a command of that kind.
Result result_for(MetricCommand command, uint16_t status);

// The result label of a meta reply whose status is `code` ("HD", "EN", ...; an error line's keyword).
Result meta_result(proto::Command command, std::string_view code);

class Op;
class Worker;
// Makes `op` record the client request's duration and result under its command (when metrics are
// enabled), once it finishes.
void track_request(Worker& worker, Op& op, const proto::Request& request);

}  // namespace rend::worker
