// One request on the control socket, checked: what rendctl (or any client) may send, as a value
// the supervisor can act on without looking at JSON again.
//
// A line is a JSON object {"cmd": "...", ...}. Whatever else arrives (not JSON, not an object,
// fields of the wrong type, numbers out of range) is refused with a reason, never thrown: the
// control socket is reachable by anything running as rend's user.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace rend::supervisor {

struct ControlRequest {
  std::string cmd;  // status, version, reload, restart, restart-worker, scale, stop, upgrade, ..., upgrade
  int slot = -1;    // restart-worker
  int workers = 0;  // scale
  // The requesting connection's descriptor, set by the control server: an in-place upgrade hands
  // it to the next image, which answers on it.
  int connection_fd = -1;
};

// Parses one request line (without its newline).
Status parse_control_request(std::string_view line, ControlRequest& out);

}  // namespace rend::supervisor
