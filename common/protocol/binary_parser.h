// Parsers for memcached's binary protocol: client requests (with memcached 1.6's per-opcode
// validation) and server responses (what a backend sends back).
//
// Pure functions over a byte span: no I/O, no allocation. A prefix of a valid packet is kNeedMore
// with nothing consumed.
#pragma once

#include <span>
#include <string_view>

#include "common/protocol/binary_format.h"
#include "common/protocol/request.h"

namespace rend::proto {

// `rend_private`: also accept the opcodes only a worker sends rend-l2 (meta_wire.h); from a
// client they are unknown commands, as in memcached.
ParseResult parse_binary_request(std::span<const char> input, size_t max_item_size, bool rend_private = false);

struct BinaryResponse {
  bin::Header header;
  std::string_view extras;
  std::string_view key;
  std::string_view value;
  uint16_t status() const { return header.status_or_vbucket; }
};

enum class ResponseParse : uint8_t { kOk, kNeedMore, kBad };

// `max_body` bounds what a backend may send (a bigger body is kBad: we never buffer unbounded).
ResponseParse parse_binary_response(std::span<const char> input, size_t max_body, BinaryResponse& out,
                                    size_t& consumed);

}  // namespace rend::proto
