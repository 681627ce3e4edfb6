#include "common/item_rules.h"

#include "common/protocol/binary_format.h"
#include "common/protocol/item_size.h"
#include "common/protocol/text_parser.h"

namespace rend {

using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

namespace {

Change status_only(uint16_t status) {
  Change c;
  c.status = status;
  return c;
}

Change put(Item item) {
  Change c;
  c.status = bin::kSuccess;
  c.write = Change::Write::kPut;
  c.item = std::move(item);
  return c;
}

Item new_item(const Request& r, uint32_t now, const CasFn& next_cas) {
  Item it;
  it.meta.flags = r.flags;
  it.meta.expiry = absolute_expiry(r.exptime, now);
  it.meta.cas = next_cas();
  it.meta.stored_at = now;
  it.data.assign(r.value);
  return it;
}

// set/add/replace/cas. memcached turns a binary set/add/replace that carries a CAS into a cas.
Change store(const Request& r, const Item* current, uint32_t now, const CasFn& next_cas) {
  const bool cas_mode = r.command == Command::kCas || r.cas != 0;
  if (cas_mode) {
    if (current == nullptr) return status_only(bin::kKeyNotFound);
    // A cas of 0 never matches (memcached: CAS_NONE is BADVAL for a cas command).
    if (r.cas == 0 || r.cas != current->meta.cas) return status_only(bin::kKeyExists);
    return put(new_item(r, now, next_cas));
  }
  switch (r.command) {
    case Command::kAdd:
      if (current != nullptr) return status_only(bin::kKeyExists);  // text: NOT_STORED
      break;
    case Command::kReplace:
      if (current == nullptr) return status_only(bin::kKeyNotFound);  // text: NOT_STORED
      break;
    default: break;
  }
  return put(new_item(r, now, next_cas));
}

Change append(const Request& r, const Item* current, uint32_t now, size_t max_item_size, const CasFn& next_cas) {
  if (current == nullptr) return status_only(bin::kNotStored);
  if (r.cas != 0 && r.cas != current->meta.cas) return status_only(bin::kKeyExists);
  // memcached cannot allocate the combined item and answers NOT_STORED (binary "Not stored."),
  // keeping the old one. Without this an item grows without bound, and a worker refuses (and
  // drops the L2 connection over) a reply larger than any item it expects.
  if (!proto::fits_memcached_item(r.key.size(), current->meta.flags, current->data.size() + r.value.size(),
                                  max_item_size)) {
    return status_only(bin::kNotStored);
  }
  // The old item's flags and expiry stay; the request's are ignored, as in memcached.
  Item it;
  it.meta = current->meta;
  it.meta.cas = next_cas();
  it.meta.stored_at = now;
  it.meta.marks = 0;  // memcached links a new item
  it.meta.last_access = 0;
  it.data.reserve(current->data.size() + r.value.size());
  if (r.command == Command::kAppend) {
    it.data.append(current->data).append(r.value);
  } else {
    it.data.append(r.value).append(current->data);
  }
  return put(std::move(it));
}

Change arith(const Request& r, const Item* current, uint32_t now, const CasFn& next_cas) {
  const bool incr = r.command == Command::kIncr;
  if (current == nullptr) {
    // Binary incr/decr may create the counter; 0xffffffff (and every text incr) means "don't".
    if (r.protocol != Protocol::kBinary || r.create_exptime == 0xffffffffu) return status_only(bin::kKeyNotFound);
    Item it;
    it.meta.flags = 0;
    it.meta.expiry = absolute_expiry(r.create_exptime, now);
    it.meta.cas = next_cas();
    it.meta.stored_at = now;
    it.data = std::to_string(r.initial);
    Change c = put(std::move(it));
    c.number = r.initial;
    return c;
  }
  // An empty value is refused before the CAS is compared, any other non-number after (memcached).
  if (current->data.empty()) return status_only(bin::kDeltaBadValue);
  if (r.cas != 0 && r.cas != current->meta.cas) return status_only(bin::kKeyExists);
  uint64_t value = 0;
  if (!apply_delta(current->data, incr, r.delta, value)) return status_only(bin::kDeltaBadValue);
  Item it;
  it.meta = current->meta;
  it.meta.cas = next_cas();
  it.meta.stored_at = now;
  it.data = counter_text(value, current->data.size());
  if (it.data.size() > current->data.size()) {
    // A longer number is a new item in memcached: flags and TTL kept, its marks (fetched, stale,
    // win token, binary key) not.
    it.meta.marks = 0;
    it.meta.last_access = 0;
  }
  Change c = put(std::move(it));
  c.number = value;
  return c;
}

Change touch(const Request& r, const Item* current, uint32_t now) {
  if (current == nullptr) return status_only(bin::kKeyNotFound);
  // memcached's touch keeps the CAS: a gets/cas pair around a touch still matches.
  Item it = *current;
  it.meta.expiry = absolute_expiry(r.exptime, now);
  it.meta.stored_at = now;
  return put(std::move(it));
}

}  // namespace

uint32_t absolute_expiry(uint32_t exptime, uint32_t now) {
  if (exptime == 0) return 0;
  if (exptime > kMaxRelativeExptime) return exptime;  // absolute already (maybe long past: expired)
  const uint64_t at = uint64_t{now} + exptime;
  return at > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(at);
}

bool apply_delta(std::string_view data, bool incr, uint64_t delta, uint64_t& result) {
  // memcached refuses an empty value, then reads it with strtoull's rules (safe_strtoull).
  uint64_t value = 0;
  if (data.empty() || !proto::parse_u64(data, value)) return false;
  if (incr) {
    result = value + delta;  // wraps at 2^64, as memcached
  } else {
    result = delta > value ? 0 : value - delta;
  }
  return true;
}

std::string counter_text(uint64_t value, size_t old_length) {
  std::string s = std::to_string(value);
  if (s.size() < old_length) s.append(old_length - s.size(), ' ');
  return s;
}

Change apply_change(const Request& r, const Item* current, uint32_t now, size_t max_item_size, const CasFn& next_cas) {
  switch (r.command) {
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kCas: return store(r, current, now, next_cas);
    case Command::kAppend:
    case Command::kPrepend: return append(r, current, now, max_item_size, next_cas);
    case Command::kDelete: {
      if (current == nullptr) return status_only(bin::kKeyNotFound);
      if (r.cas != 0 && r.cas != current->meta.cas) return status_only(bin::kKeyExists);
      Change c;
      c.status = bin::kSuccess;
      c.write = Change::Write::kDelete;
      return c;
    }
    case Command::kIncr:
    case Command::kDecr: return arith(r, current, now, next_cas);
    case Command::kTouch:
    case Command::kGat:
    case Command::kGats: return touch(r, current, now);
    case Command::kTooLarge: {
      // memcached drops the old value of a set that failed for size, so no reader sees data
      // older than a write that was refused.
      Change c;
      c.status = bin::kTooLarge;
      if (r.original == Command::kSet || r.original == Command::kMetaSet)
        c.write = Change::Write::kDelete;  // blind, like a set
      return c;
    }
    default: return status_only(bin::kUnknownCommand);
  }
}

}  // namespace rend
