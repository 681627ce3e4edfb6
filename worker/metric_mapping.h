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

}  // namespace rend::worker
