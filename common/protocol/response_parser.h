// Client-side parsers for memcached replies: what a server sends back to a client. Used by
// rend-loadgen to frame and check every reply it reads.
//
// Pure functions over a byte span: no I/O, no allocation, no state. The result refers to the input
// by views, valid as long as the input bytes are. Either the input starts with one complete reply
// element (kOk, `consumed` set), or with a prefix of one (kNeedMore, nothing consumed), or with
// bytes that can never be a reply (kBad: the stream cannot be re-framed, close the connection).
//
// Text replies are parsed one element at a time: a retrieval answers with zero or more kValue
// elements and then kEnd, every other command with exactly one element. The caller knows what it
// sent and so which elements to expect; the parser itself needs no context.
// Binary replies are whole packets; parse_binary_response (binary_parser.h) is re-exported here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/protocol/binary_parser.h"

namespace rend::proto {

enum class TextReplyKind : uint8_t {
  kValue,        // "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n": one item of a retrieval
  kEnd,          // "END": the end of a retrieval (or of a stats listing)
  kStored,       // "STORED"
  kNotStored,    // "NOT_STORED"
  kExists,       // "EXISTS"
  kNotFound,     // "NOT_FOUND"
  kDeleted,      // "DELETED"
  kTouched,      // "TOUCHED"
  kOk,           // "OK" (flush_all, verbosity)
  kNumber,       // "<digits>": the new value after incr/decr
  kVersion,      // "VERSION <text>"
  kStat,         // "STAT <name> <value>"
  kError,        // "ERROR" (unknown command)
  kClientError,  // "CLIENT_ERROR <message>"
  kServerError,  // "SERVER_ERROR <message>"
};

std::string_view text_reply_name(TextReplyKind kind);

struct TextReply {
  TextReplyKind kind = TextReplyKind::kError;
  // kValue only.
  std::string_view key;
  uint32_t flags = 0;
  bool has_cas = false;
  uint64_t cas = 0;
  std::string_view data;
  // kNumber only.
  uint64_t number = 0;
  // kVersion, kStat, kClientError, kServerError: the rest of the line after the keyword and one
  // space (may be empty).
  std::string_view message;
};

// A reply line longer than this (with no "\r\n" in it) is kBad rather than a reason to buffer
// forever. memcached's longest lines are STAT lines, far shorter.
inline constexpr size_t kMaxReplyLine = 8192;

// `max_value` bounds the data of a VALUE element: a larger announced size is kBad, so a corrupt
// stream cannot make the caller buffer without bound.
ResponseParse parse_text_response(std::span<const char> input, size_t max_value, TextReply& out, size_t& consumed);

// One reply to a meta command (mg ms md ma mn me), or the error line that replaced it: the status
// line and, after "VA <size>", its data block. `bytes` is the whole reply as received.
struct MetaResponse {
  std::string_view bytes;
  std::string_view code;   // "VA", "HD", "EN", "NF", "NS", "EX", "MN", "ME", or the error's keyword
  std::string_view flags;  // the flag tokens after the code (and VA's size), may be empty
  std::string_view data;   // VA only
  bool is_error = false;   // ERROR, CLIENT_ERROR, SERVER_ERROR
};

ResponseParse parse_meta_response(std::span<const char> input, size_t max_value, MetaResponse& out, size_t& consumed);

}  // namespace rend::proto
