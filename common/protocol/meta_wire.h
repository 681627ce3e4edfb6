// How a worker carries a meta command to rend-l2, and what comes back: one more opcode of the
// binary protocol they already speak (after GetE), never accepted from a client.
//
// Why not the meta protocol itself on a second connection: one connection per key keeps a
// client's classic and meta requests of a key in order on the wire (rend-l2 runs a connection's
// requests in order), and the pools, holds, deadlines and race tracking stay one mechanism.
//
// Request:  opcode kMeta, key = the decoded key, value = <command letter><flags>"\n"<ms data>.
// Response: opcode kMeta, status kSuccess, extras = MetaSummary (kMetaSummarySize bytes),
//           value = the reply exactly as memcached words it for the client's flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/protocol/binary_format.h"
#include "common/protocol/request.h"

namespace rend::proto {

namespace bin {
inline constexpr uint8_t kMeta = 0x42;
}

// The reply's outcome in a form the worker's tier steps can act on.
struct MetaSummary {
  uint8_t code = 0;           // rend::MetaCode
  bool has_item = false;      // the fields below describe the item after the command
  bool clean = false;         // no stale or win-token marks: L1 may hold a copy
  bool changed = false;       // the command wrote the item (a new value, TTL, mark or CAS)
  bool suppressible = false;  // the reply is one `q` hides
  uint32_t flags = 0;
  uint32_t expiry = 0;  // absolute unix seconds, 0 = never
  uint64_t cas = 0;
};
inline constexpr size_t kMetaSummarySize = 20;

inline std::string encode_meta_summary(const MetaSummary& s) {
  std::string out(kMetaSummarySize, '\0');
  out[0] = static_cast<char>(s.code);
  out[1] = static_cast<char>((s.has_item ? 1 : 0) | (s.clean ? 2 : 0) | (s.changed ? 4 : 0) | (s.suppressible ? 8 : 0));
  bin::store32(out.data() + 4, s.flags);
  bin::store32(out.data() + 8, s.expiry);
  bin::store64(out.data() + 12, s.cas);
  return out;
}

inline bool decode_meta_summary(std::string_view extras, MetaSummary& s) {
  if (extras.size() != kMetaSummarySize) return false;
  s.code = static_cast<uint8_t>(extras[0]);
  const auto bits = static_cast<uint8_t>(extras[1]);
  s.has_item = (bits & 1) != 0;
  s.clean = (bits & 2) != 0;
  s.changed = (bits & 4) != 0;
  s.suppressible = (bits & 8) != 0;
  s.flags = bin::load32(extras.data() + 4);
  s.expiry = bin::load32(extras.data() + 8);
  s.cas = bin::load64(extras.data() + 12);
  return true;
}

// The command letter of the request's value ('g', 's', 'd', 'a', 'e').
char meta_letter(Command command);
Command meta_command_of(char letter);

// Appends the kMeta request for `command` on `key` (decoded) with `flags` and `data`.
void append_meta_l2_request(std::string& out, Command command, std::string_view key, std::string_view flags,
                            std::string_view data, bool track_races);

}  // namespace rend::proto
