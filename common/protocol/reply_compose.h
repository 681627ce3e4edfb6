// Composing server replies exactly as memcached 1.6 words them. Shared by rend-worker (replies
// built from L1/L2 responses) and rend-l2 (replies from its own store).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/protocol/binary_parser.h"
#include "common/protocol/request.h"

namespace rend::proto {

// The text reply line (without CRLF) for the outcome `status` (a binary status) of a storage,
// delete, touch or arithmetic command.
std::string_view text_status_line(Command command, uint16_t status);

// "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n"
void append_text_value(std::string& out, std::string_view key, uint32_t flags, std::string_view data, bool with_cas,
                       uint64_t cas);
void append_line(std::string& out, std::string_view line);

// A binary response carrying `r`'s status, cas and body, addressed with `opcode` and `opaque`.
void append_binary_relay(std::string& out, uint8_t opcode, uint32_t opaque, const BinaryResponse& r);
// A header-only success, or an error carrying memcached's message for `status`.
void append_binary_status(std::string& out, uint8_t opcode, uint32_t opaque, uint16_t status);

// Flags from a get response's extras (0 when absent).
uint32_t response_flags(const BinaryResponse& r);

}  // namespace rend::proto
