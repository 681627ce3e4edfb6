// What each command is, in one list: whether it reads or writes a key, returns a CAS, takes
// several keys on a text line, or changes a TTL. The worker's orchestrations, rend-l2's engine and
// the tier rules' test ask this list rather than restating their own.
#pragma once

#include <cstddef>

#include "common/protocol/request.h"

namespace rend::proto {

struct CommandTraits {
  Command command;
  bool reads_key;    // answers with an item's value (get, gets, gat, gats, GetE)
  bool writes_key;   // may change what is stored under a key (gat/gats and touch change its TTL)
  bool returns_cas;  // a text reply carries the CAS (gets, gats)
  bool multi_key;    // a text line may name several keys (get, gets, gat, gats)
  bool touches;      // sets a new TTL (touch, gat, gats)
};

// clang-format off
inline constexpr CommandTraits kCommandTraits[] = {
    // command            reads  writes cas    multi  touches
    {Command::kGet,       true,  false, false, true,  false},
    {Command::kGets,      true,  false, true,  true,  false},
    {Command::kGat,       true,  true,  false, true,  true},
    {Command::kGats,      true,  true,  true,  true,  true},
    {Command::kGetE,      true,  false, false, false, false},
    {Command::kSet,       false, true,  false, false, false},
    {Command::kAdd,       false, true,  false, false, false},
    {Command::kReplace,   false, true,  false, false, false},
    {Command::kAppend,    false, true,  false, false, false},
    {Command::kPrepend,   false, true,  false, false, false},
    {Command::kCas,       false, true,  false, false, false},
    {Command::kDelete,    false, true,  false, false, false},
    {Command::kIncr,      false, true,  false, false, false},
    {Command::kDecr,      false, true,  false, false, false},
    {Command::kTouch,     false, true,  false, false, true},
    {Command::kFlushAll,  false, false, false, false, false},
    {Command::kVersion,   false, false, false, false, false},
    {Command::kVerbosity, false, false, false, false, false},
    {Command::kStats,     false, false, false, false, false},
    {Command::kNoop,      false, false, false, false, false},
    {Command::kQuit,      false, false, false, false, false},
    // A set too large for the cache drops the old value, as memcached does: a key write.
    {Command::kTooLarge,  false, true,  false, false, false},
    {Command::kError,     false, false, false, false, false},
    {Command::kUnknown,   false, false, false, false, false},
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
