// The largest reply one text get/gets/gat/gats of several keys may build, in the worker and in
// rend-l2 alike.
//
// memcached streams a get's reply from references to its items; we compose it in memory before
// its first byte goes out (END comes last, and a failure replaces the whole reply), so
// `get a a a ...` naming one big item thousands of times would ask for gigabytes. Past the cap
// the reply is dropped and the request answered as memcached answers a get it cannot allocate.
// The cap is 16 × the per-connection output high-water mark (64 MiB by default: 64 values of the
// default 1 MiB item limit, far more than a client library asks for at once), and never less
// than two values of the largest size.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace rend {

inline constexpr std::string_view kGetReplyTooLarge = "SERVER_ERROR out of memory writing get response";

inline size_t max_get_reply_bytes(size_t max_item_size, size_t output_high_water) {
  return std::max(16 * output_high_water, 2 * max_item_size);
}

// What one hit adds to a text reply besides its value: "VALUE <key> <flags> <bytes> <cas>\r\n"
// and the value's "\r\n", at most.
inline size_t text_hit_overhead(size_t key_size) { return key_size + 64; }

}  // namespace rend
