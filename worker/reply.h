// Composing client replies exactly as memcached 1.6 words them, from backend responses.
#pragma once

#include <string>
#include <string_view>

#include "common/protocol/binary_parser.h"
#include "common/protocol/request.h"
#include "worker/op.h"

namespace rend::worker {

// The text reply line (without CRLF) for a storage/delete/touch/arithmetic result.
std::string_view text_status_line(proto::Command command, uint16_t status);

// "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n"
void append_text_value(std::string& out, std::string_view key, uint32_t flags, std::string_view data,
                       bool with_cas, uint64_t cas);
void append_line(std::string& out, std::string_view line);

// The backend's response, re-addressed to the client (its opcode and opaque).
void append_binary_relay(std::string& out, uint8_t opcode, uint32_t opaque, const proto::BinaryResponse& r);
// A header-only success, or an error carrying memcached's message for `status`.
void append_binary_status(std::string& out, uint8_t opcode, uint32_t opaque, uint16_t status);

std::string_view text_failure(BackendFailure why);
uint16_t binary_failure(BackendFailure why);

// Flags from a get response's extras (0 when absent).
uint32_t response_flags(const proto::BinaryResponse& r);

}  // namespace rend::worker
