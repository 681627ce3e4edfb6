// memcached 1.6's rules for the commands that change an item (do_store_item, do_add_delta,
// process_*_delete, touch), as a pure function of the request and the key's current item.
//
// No I/O and no locking: the caller reads the current item, calls apply_change() and writes what
// it decides. rend-l2's Engine does that under a key's stripe lock; the worker's chunked L1 does
// it as a compare-and-swap on the key's head item. One copy of every memcached corner, testable
// without RocksDB or sockets.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/protocol/request.h"

namespace rend {

// memcached's REALTIME_MAXDELTA: an exptime up to this many seconds is relative to now, a larger
// one is an absolute unix time.
inline constexpr uint32_t kMaxRelativeExptime = 60 * 60 * 24 * 30;

// What the meta commands mark on an item (memcached's ITEM_FETCHED, ITEM_STALE, ITEM_TOKEN_SENT,
// ITEM_KEY_BINARY). A classic write makes a new item, without marks; a touch keeps them.
enum ItemMark : uint8_t {
  kMarkFetched = 1,    // hit before (mg h)
  kMarkStale = 2,      // md I / ms I: served with X until a new value lands
  kMarkTokenSent = 4,  // a client holds the win token (W); others are told Z
  kMarkKeyBinary = 8,  // stored through a base64 key: k answers it in base64
};

struct ItemMeta {
  uint32_t flags = 0;
  uint32_t expiry = 0;  // absolute unix seconds, 0 = never
  uint64_t cas = 0;
  uint32_t stored_at = 0;
  uint8_t marks = 0;         // ItemMark bits
  uint32_t last_access = 0;  // unix seconds (mg l); 0: never read, stored_at stands for it
};

// The absolute expiry for a wire exptime received at `now` (memcached's realtime()).
uint32_t absolute_expiry(uint32_t exptime, uint32_t now);

// memcached: an item is gone once the clock reaches its expiry second.
inline bool is_expired(uint32_t expiry, uint32_t now) { return expiry != 0 && expiry <= now; }

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
//
// `max_item_size` is the largest value the caller stores (the limit its parsers apply to a set).
// The parsers can only check a request's own value; an append or prepend may still make an item
// larger than that, which memcached refuses with NOT_STORED, and so do we.
Change apply_change(const proto::Request& request, const Item* current, uint32_t now, size_t max_item_size,
                    const CasFn& next_cas);

// memcached's incr/decr arithmetic on a stored value: false when it is not a number.
bool apply_delta(std::string_view data, bool incr, uint64_t delta, uint64_t& result);

// The stored text of a counter after incr/decr: memcached rewrites a shorter number in place,
// padded with spaces to the old length ("10" decr 1 reads back as "9 ").
std::string counter_text(uint64_t value, size_t old_length);

}  // namespace rend
