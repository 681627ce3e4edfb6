// The protocol-neutral request a parser produces and the worker dispatches (rend-l2 executes).
//
// A Request never owns bytes: every string_view points into the connection's read buffer and is
// valid only until the connection consumes the request (an op copies what it keeps).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rend::proto {

enum class Protocol : uint8_t { kText, kBinary };

enum class Command : uint8_t {
  kGet,   // text get / binary get, getq, getk, getkq
  kGets,  // text gets (binary get always returns the CAS)
  kGat,   // text gat / binary gat, gatq, gatk, gatkq
  kGats,
  kGetE,  // binary only: Rend's get-with-expiry
  kSet,
  kAdd,
  kReplace,
  kAppend,
  kPrepend,
  kCas,  // text cas (binary storage commands carry a CAS in the header instead)
  kDelete,
  kIncr,
  kDecr,
  kTouch,
  kFlushAll,
  kVersion,
  kVerbosity,
  kStats,
  kNoop,
  kQuit,
  // memcached 1.6's meta commands (text only): mg, ms, md, ma, mn, me. Their flags are in
  // `meta_flags`, parsed on demand by common/protocol/meta_command.h.
  kMetaGet,
  kMetaSet,
  kMetaDelete,
  kMetaArithmetic,
  kMetaNoop,
  kMetaDebug,
  // A storage command whose value exceeds max_item_size. Its data is swallowed; the reply is
  // memcached's "object too large" error, and a set also drops the old value, as memcached does.
  kTooLarge,
  // The request is answered with `error_text` (text) or `error_status` (binary) and no backend work.
  kError,
  kUnknown,  // binary opcode memcached does not serve: "Unknown command", body swallowed
};

inline constexpr size_t kMaxKeyLength = 250;
inline constexpr size_t kMaxTextLine = 2048;
// memcached reads a text connection into a 16 KiB buffer and looks for a command's end there: a
// line (other than a get's) whose newline would fall past it is never read, and the connection is
// closed. A line between kMaxTextLine and this is served when it arrives whole, as in memcached.
inline constexpr size_t kMaxTextCommandLine = 16384;
// A text get line may be much longer (a large multi-get), as memcached allows; this bounds it.
inline constexpr size_t kMaxTextGetLine = 256 * 1024;
// memcached's REALTIME_MAXDELTA + 1: an absolute time long past, so "expire at once". memcached
// maps a negative text exptime to it; we do the same before the value reaches a binary backend.
inline constexpr uint32_t kExpireImmediately = 60 * 60 * 24 * 30 + 1;

struct Request {
  Protocol protocol = Protocol::kText;
  Command command = Command::kUnknown;
  // The storage command behind kTooLarge / the read behind kError (for statistics only).
  Command original = Command::kUnknown;
  uint8_t opcode = 0;        // binary: the opcode as the client sent it (echoed in the reply)
  bool quiet = false;        // binary quiet opcode, or text "noreply"
  bool return_key = false;   // binary getk/gatk family
  bool close_after = false;  // close the connection once this reply is written
  uint32_t opaque = 0;
  std::string_view key;
  // Text multi-key reads: the keys, space separated, exactly as on the line ("a b  c").
  std::string_view keys;
  std::string_view value;
  uint32_t flags = 0;
  uint32_t exptime = 0;  // wire value for a binary backend (negative text values already mapped)
  uint64_t cas = 0;
  uint64_t delta = 0;
  uint64_t initial = 0;          // binary incr/decr: value created on a miss
  uint32_t create_exptime = 0;   // binary incr/decr: 0xffffffff means "do not create"
  bool has_exptime = false;      // flush_all with a delay / binary flush with extras
  std::string_view stats_group;  // "stats <group>" / binary stat key
  // Meta commands: the flag tokens after the key (after the data length for ms), as on the line.
  // `key` is the key token as sent (still base64 when the flags hold `b`).
  std::string_view meta_flags;
  std::string_view error_text;  // text reply for kError / kTooLarge
  uint16_t error_status = 0;    // binary status for kError / kTooLarge
  // Binary, worker to rend-l2: bin::kDataTypeTrackRaces. Set by rend-l2's connection from the
  // header and by a worker composing its L2 requests; the parsers leave it false, so a client
  // can never pass it on.
  bool track_races = false;
};

// Calls fn(key) for each key of a text multi-key read, in line order (duplicates included).
template <typename Fn>
void for_each_key(std::string_view keys, Fn&& fn) {
  size_t i = 0;
  while (i < keys.size()) {
    while (i < keys.size() && keys[i] == ' ') ++i;
    size_t j = i;
    while (j < keys.size() && keys[j] != ' ') ++j;
    if (j > i) fn(keys.substr(i, j - i));
    i = j;
  }
}

enum class ParseStatus : uint8_t {
  kRequest,   // `request` is valid; `consumed` bytes belong to it, then `swallow` more are discarded
  kNeedMore,  // nothing consumed; call again with more bytes
  kClose,     // unframeable input: close the connection without a reply (as memcached does)
};

struct ParseResult {
  ParseStatus status = ParseStatus::kNeedMore;
  size_t consumed = 0;
  uint64_t swallow = 0;
  Request request;
};

}  // namespace rend::proto
