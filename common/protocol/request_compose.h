// Composes a Request into its wire form: the client side of the protocols. Used by rend's
// backend clients (binary), by rend-loadgen and by the tests' compose->parse round trips.
//
// Appends to `out`; never fails for a well-formed Request (the caller keeps keys <= 250 bytes).
#pragma once

#include <string>

#include "common/protocol/request.h"

namespace rend::proto {

// memcached text syntax, e.g. "set k 5 0 3 noreply\r\nabc\r\n", "get a b\r\n", "gat 10 a b\r\n".
// Reads `keys` for the multi-key reads, `key` for the rest; `quiet` becomes "noreply" where the
// command accepts it. kError/kTooLarge/kUnknown cannot be composed (nothing is appended).
void compose_text_request(const Request& request, std::string& out);

// memcached binary syntax. Uses `opcode` when non-zero, otherwise the natural opcode for
// `command` (made quiet when `quiet`, with the K variant when `return_key`).
void compose_binary_request(const Request& request, std::string& out);

// The natural binary opcode for a command (0xff when there is none, e.g. text-only kGets).
uint8_t binary_opcode_for(Command command, bool quiet, bool return_key);

}  // namespace rend::proto
