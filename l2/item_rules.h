// memcached 1.6's rules for the commands that change an item (do_store_item, do_add_delta,
// process_*_delete, touch), as a pure function of the request and the key's current item.
//
// No I/O and no locking: the Engine holds the key's stripe lock, reads the current item, calls
// apply_change() and writes what it decides. That split keeps every memcached corner here,
// testable without RocksDB or sockets.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/protocol/request.h"
#include "l2/value_format.h"

namespace rend::l2 {

struct Item {
  ItemMeta meta;
  std::string data;
};

struct Change {
  enum class Write : uint8_t { kNone, kPut, kDelete };
  // The outcome as memcached's binary status (kSuccess, kKeyNotFound, kKeyExists, kNotStored,
  // kDeltaBadValue, kTooLarge); the text reply is derived from it.
  uint16_t status = 0;
  Write write = Write::kNone;
  Item item;            // kPut: the item to store; also the item a gat/touch returns
  uint64_t number = 0;  // incr/decr: the new counter value
};

// Allocates the next CAS unique.
using CasFn = std::function<uint64_t()>;

// `request` is one of kSet, kAdd, kReplace, kAppend, kPrepend, kCas, kDelete, kIncr, kDecr,
// kTouch, kGat, kGats, kTooLarge; `current` is the live item (nullptr when absent, expired or
// flushed). For the multi-key gat/gats the Engine calls this once per key.
Change apply_change(const proto::Request& request, const Item* current, uint32_t now, const CasFn& next_cas);

// memcached's incr/decr arithmetic on a stored value: false when it is not a number.
bool apply_delta(std::string_view data, bool incr, uint64_t delta, uint64_t& result);

// The stored text of a counter after incr/decr: memcached rewrites a shorter number in place,
// padded with spaces to the old length ("10" decr 1 reads back as "9 ").
std::string counter_text(uint64_t value, size_t old_length);

}  // namespace rend::l2
