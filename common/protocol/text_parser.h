// Parser for memcached's text protocol, with memcached 1.6's exact validation and error replies.
//
// A pure function over a byte span: no I/O, no allocation, no state. Either the input holds one
// complete request (kRequest, with the bytes it used), or it is a prefix of one (kNeedMore, nothing
// consumed), or it can never be framed (kClose).
#pragma once

#include <span>

#include "common/protocol/request.h"

namespace rend::proto {

ParseResult parse_text(std::span<const char> input, size_t max_item_size);

// memcached's number rules (safe_strtoul & co.): decimal, no trailing junk, range checked.
bool parse_u32_truncating(std::string_view token, uint32_t& out);  // flags: like strtoul, truncated
bool parse_i32(std::string_view token, int32_t& out);
bool parse_u64(std::string_view token, uint64_t& out);

}  // namespace rend::proto
