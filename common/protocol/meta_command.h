// memcached 1.6's meta commands (mg, ms, md, ma, mn, me): the flags of one request, validated as
// memcached 1.6.18 validates them, and the key they name.
//
// A meta request reaches the worker as a Request with its flag tokens in `meta_flags`; whoever
// needs them (the text parser to reject a request, the worker to plan its tier steps, rend-l2 to
// execute it) parses them here. Pure functions over views, no allocation but a decoded key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/protocol/request.h"

namespace rend::proto {

// memcached's MFLAG_MAX_OPT_LENGTH: a meta line of this many tokens or more (command and key
// included) is refused, and MFLAG_MAX_OPAQUE_LENGTH: the longest O token, its 'O' included.
inline constexpr size_t kMetaMaxTokens = 20;
inline constexpr size_t kMetaMaxOpaque = 32;

struct MetaOptions {
  bool base64 = false;              // b: the key token is base64
  bool return_cas = false;          // c
  bool return_flags = false;        // f
  bool return_hit = false;          // h: hit before (0/1)
  bool return_key = false;          // k
  bool return_last_access = false;  // l: seconds since the last access
  bool return_size = false;         // s
  bool return_ttl = false;          // t
  bool return_value = false;        // v
  bool quiet = false;               // q
  bool no_update = false;           // u: no LRU bump, hit and last-access marks unchanged
  bool vivify = false;              // N<ttl>
  bool recache = false;             // R<ttl>
  bool new_ttl = false;             // T<ttl>
  bool invalidate = false;          // I
  bool has_cas = false;             // C<cas>
  bool has_flags = false;           // F<flags>
  bool has_initial = false;         // J<n>
  bool has_delta = false;           // D<n>
  char mode = 0;                    // M<c>, as sent (0 when absent)
  // The TTLs as wire exptimes (a negative one mapped to kExpireImmediately, as memcached does).
  uint32_t vivify_exptime = 0;
  uint32_t recache_exptime = 0;
  uint32_t exptime = 0;
  uint64_t cas = 0;
  uint32_t client_flags = 0;
  uint64_t initial = 0;
  uint64_t delta = 1;
  std::string_view opaque;  // the O token, 'O' included
  // mg and ma with an O token longer than kMetaMaxOpaque: memcached executes them and then answers
  // "CLIENT_ERROR opaque token too long" in place of their reply (ms and md are refused outright).
  bool opaque_too_long = false;
};

// Calls fn(token) for each flag token of `flags`, in order.
template <typename Fn>
void for_each_meta_flag(std::string_view flags, Fn&& fn) {
  for_each_key(flags, fn);
}

// Parses `flags` as memcached's _meta_flag_preparse does for `command` (`key` is the key token, which
// `b` must be able to decode; empty when the key is decoded already). On a refusal returns false and sets `error` to
// memcached's reply line for it (without "\r\n").
bool parse_meta_options(Command command, std::string_view key, std::string_view flags, MetaOptions& out,
                        std::string_view& error);

// The key a meta request names: the token itself, or its base64 decoding (nullopt when it does not
// decode, which memcached answers "CLIENT_ERROR error decoding key").
std::optional<std::string> meta_key(std::string_view token, bool base64);

// memcached's base64 (RFC 4648, padded).
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

// A copy of `flags` without the tokens whose first letter is in `drop` (e.g. "q").
std::string meta_flags_without(std::string_view flags, std::string_view drop);

}  // namespace rend::proto
