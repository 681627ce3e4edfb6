// What each command is, in one list: whether it reads or writes a key, returns a CAS, takes
// several keys on a text line, or changes a TTL. The worker's orchestrations, rend-l2's engine and
// the tier rules' test ask this list rather than restating their own.
#pragma once

#include <cstddef>
#include <string_view>

#include "common/protocol/request.h"

namespace rend::proto {

struct CommandTraits {
  Command command;
  std::string_view name;  // memcached's name for it (a label for the internal ones)
  bool reads_key;         // answers with an item's value (get, gets, gat, gats, GetE)
  bool writes_key;        // may change what is stored under a key (gat/gats and touch change its TTL)
  bool returns_cas;       // a text reply carries the CAS (gets, gats)
  bool multi_key;         // a text line may name several keys (get, gets, gat, gats)
  bool touches;           // sets a new TTL (touch, gat, gats)
  bool stores;            // a storage command, with a value (set, add, replace, append, prepend, cas)
};

// clang-format off
inline constexpr CommandTraits kCommandTraits[] = {
    // command           name             reads  writes cas    multi  touches stores
    {Command::kGet,       "get",           true,  false, false, true,  false, false},
    {Command::kGets,      "gets",          true,  false, true,  true,  false, false},
    {Command::kGat,       "gat",           true,  true,  false, true,  true, false},
    {Command::kGats,      "gats",          true,  true,  true,  true,  true, false},
    {Command::kGetE,      "GetE",          true,  false, false, false, false, false},
    {Command::kSet,       "set",           false, true,  false, false, false, true},
    {Command::kAdd,       "add",           false, true,  false, false, false, true},
    {Command::kReplace,   "replace",       false, true,  false, false, false, true},
    {Command::kAppend,    "append",        false, true,  false, false, false, true},
    {Command::kPrepend,   "prepend",       false, true,  false, false, false, true},
    {Command::kCas,       "cas",           false, true,  false, false, false, true},
    {Command::kDelete,    "delete",        false, true,  false, false, false, false},
    {Command::kIncr,      "incr",          false, true,  false, false, false, false},
    {Command::kDecr,      "decr",          false, true,  false, false, false, false},
    {Command::kTouch,     "touch",         false, true,  false, false, true, false},
    {Command::kFlushAll,  "flush_all",     false, false, false, false, false, false},
    {Command::kVersion,   "version",       false, false, false, false, false, false},
    {Command::kVerbosity, "verbosity",     false, false, false, false, false, false},
    {Command::kStats,     "stats",         false, false, false, false, false, false},
    {Command::kNoop,      "noop",          false, false, false, false, false, false},
    {Command::kQuit,      "quit",          false, false, false, false, false, false},
    // A meta get may change its item (N, T, R, a win token, the hit and last-access marks).
    {Command::kMetaGet,   "mg",            true,  true,  false, false, false, false},
    {Command::kMetaSet,   "ms",            false, true,  false, false, false, true},
    {Command::kMetaDelete, "md",           false, true,  false, false, false, false},
    {Command::kMetaArithmetic, "ma",       false, true,  false, false, false, false},
    {Command::kMetaNoop,  "mn",            false, false, false, false, false, false},
    {Command::kMetaDebug, "me",            true,  false, false, false, false, false},
    // A set too large for the cache drops the old value, as memcached does: a key write.
    {Command::kTooLarge,  "too large set", false, true,  false, false, false, false},
    {Command::kError,     "error",         false, false, false, false, false, false},
    {Command::kUnknown,   "unknown",       false, false, false, false, false, false},
};
// clang-format on

// The list is in Command's order, so a lookup is an index (checked at compile time below).
constexpr const CommandTraits& traits(Command c) { return kCommandTraits[static_cast<size_t>(c)]; }

constexpr bool traits_in_command_order() {
  for (size_t i = 0; i < std::size(kCommandTraits); ++i) {
    if (static_cast<size_t>(kCommandTraits[i].command) != i) return false;
  }
  return std::size(kCommandTraits) == static_cast<size_t>(Command::kUnknown) + 1;
}
static_assert(traits_in_command_order(), "kCommandTraits must list every Command, in order");

// A text read of several keys (get/gets/gat/gats on a text connection): its keys are in `keys`.
inline bool is_text_multi_key(const Request& r) { return r.protocol == Protocol::kText && traits(r.command).multi_key; }

}  // namespace rend::proto
