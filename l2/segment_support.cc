#include "l2/segment_support.h"

#include <chrono>
#include <ctime>

#include "common/get_reply_limit.h"
#include "common/protocol/binary_format.h"
#include "l2/value_format.h"

namespace rend::l2 {

using proto::Command;
using proto::Request;
namespace bin = proto::bin;

uint32_t unix_now() { return static_cast<uint32_t>(time(nullptr)); }

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

size_t key_count(const Request& r) {
  size_t n = 0;
  for_each_request_key(r, [&](std::string_view) { ++n; });
  return n;
}

bool needs_current(const Request& r) {
  if (r.command == Command::kTooLarge) return false;
  if (r.command == Command::kSet) return r.cas != 0;
  return true;
}

Found classify(const rocksdb::Status& st, const rocksdb::PinnableSlice& value, const FlushState& flush, uint32_t now,
               ItemMeta& meta, std::string_view& data) {
  if (st.IsNotFound()) return Found::kAbsent;
  if (!st.ok()) return Found::kError;
  // A record we cannot read is treated as absent: the next write of the key replaces it.
  if (!decode_item(view(value), meta, data)) return Found::kAbsent;
  if (is_expired(meta.expiry, now)) return Found::kExpired;
  if (flush.is_flushed(meta.cas, meta.stored_at, now)) return Found::kFlushed;
  return Found::kLive;
}

void count_get(L2Stats& s, Found f, bool touching) {
  s.add(L2Counter::cmd_get);
  if (touching) s.add(L2Counter::cmd_touch);
  if (f == Found::kLive) {
    s.add(L2Counter::get_hits);
    if (touching) s.add(L2Counter::touch_hits);
    return;
  }
  s.add(L2Counter::get_misses);
  if (touching) s.add(L2Counter::touch_misses);
  if (f == Found::kExpired) s.add(L2Counter::get_expired);
  if (f == Found::kFlushed) s.add(L2Counter::get_flushed);
}

void count_change(L2Stats& s, const Request& r, const Change& c, bool existed) {
  const bool ok = c.status == bin::kSuccess;
  if (proto::traits(r.command).stores) {
    s.add(L2Counter::cmd_set);
    if (ok) s.add(L2Counter::total_items);
    // A cas, or a binary set/add/replace carrying a CAS (append/prepend ignore theirs).
    if (r.command == Command::kCas || (r.cas != 0 && r.command != Command::kAppend && r.command != Command::kPrepend)) {
      s.add(ok ? L2Counter::cas_hits : c.status == bin::kKeyExists ? L2Counter::cas_badval : L2Counter::cas_misses);
    }
    return;
  }
  switch (r.command) {
    case Command::kTooLarge:
      s.add(L2Counter::cmd_set);
      s.add(L2Counter::store_too_large);
      break;
    case Command::kDelete:
      if (ok || c.status == bin::kKeyNotFound) s.add(ok ? L2Counter::delete_hits : L2Counter::delete_misses);
      break;
    case Command::kIncr:
    case Command::kDecr: {
      const bool incr = r.command == Command::kIncr;
      if (ok && !existed) {
        s.add(L2Counter::total_items);  // created by a binary incr/decr with an initial value
      } else if (ok) {
        s.add(incr ? L2Counter::incr_hits : L2Counter::decr_hits);
      } else if (c.status == bin::kKeyNotFound) {
        s.add(incr ? L2Counter::incr_misses : L2Counter::decr_misses);
      }
      break;
    }
    case Command::kTouch:
      s.add(L2Counter::cmd_touch);
      s.add(ok ? L2Counter::touch_hits : L2Counter::touch_misses);
      break;
    case Command::kGat:
    case Command::kGats: count_get(s, ok ? Found::kLive : Found::kAbsent, true); break;
    default: break;
  }
}

size_t text_value_bytes(std::string_view key, size_t data_size) { return data_size + text_hit_overhead(key.size()); }

}  // namespace rend::l2
