// How rend-l2 stores an item in RocksDB, and memcached's expiry arithmetic.
//
// A stored value is a fixed 21-byte header followed by the item's data:
//
//   offset  size  field
//        0     1  format version (kFormatVersion)
//        1     4  flags, as the client gave them
//        5     4  expiry: absolute unix seconds, 0 = never
//        9     8  CAS unique
//       17     4  stored_at: unix seconds of the write (flush_all with a delay compares it)
//       21     n  data
//
// An item the meta commands marked (common/item_rules.h: stale, win token sent, hit before, key
// given in base64) or whose last access they track is stored in the second format, five bytes
// longer: version 2, the same fields, then
//       21     1  marks (ItemMark bits)
//       22     4  last_access: unix seconds of the last read that moved it (0 = stored_at)
//       26     n  data
//
// Integers are big-endian, like the wire protocol. Expiry is absolute so an item read back after
// a restart, or handed to L1 through GetE, expires at the same wall-clock second it always would.
// Pure functions, no state; decoding never trusts the input (a short or unknown record is
// reported, not read past).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/item_rules.h"

namespace rend::l2 {

inline constexpr uint8_t kFormatVersion = 1;
inline constexpr size_t kItemHeaderSize = 21;
inline constexpr uint8_t kMarkedFormatVersion = 2;
inline constexpr size_t kMarkedItemHeaderSize = 26;

// Appends header + data to `out`. `data2` is appended after `data` (append/prepend build the new
// value without an intermediate copy).
void encode_item(const ItemMeta& meta, std::string_view data, std::string& out, std::string_view data2 = {});

// False when `stored` is not a record of ours (too short, unknown version): treat it as a miss.
bool decode_item(std::string_view stored, ItemMeta& meta, std::string_view& data);

// What the compaction filter leaves in place of an expired or flushed item: an already-expired,
// empty record. It must not simply remove the key, because an older version of it may sit in an
// older table file and would become visible again.
const std::string& dead_marker();
bool is_dead_marker(std::string_view stored);

}  // namespace rend::l2
