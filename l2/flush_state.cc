#include "l2/flush_state.h"

#include <algorithm>

#include "common/protocol/binary_format.h"
#include "l2/value_format.h"

namespace rend::l2 {

namespace bin = proto::bin;

bool FlushState::is_flushed(uint64_t cas, uint32_t stored_at, uint32_t now) const {
  if (cas < dead_below_cas) return true;
  if (dead_through_time != 0 && stored_at <= dead_through_time) return true;
  return pending_through_time != 0 && pending_through_time <= now && stored_at <= pending_through_time;
}

void FlushState::apply_flush(uint32_t now, uint32_t delay, uint64_t cas_mark) {
  // A delayed flush that has come due becomes permanent before anything replaces it.
  if (pending_through_time != 0 && pending_through_time <= now) {
    dead_through_time = std::max(dead_through_time, pending_through_time);
    pending_through_time = 0;
  }
  const uint32_t at = delay == 0 ? 0 : absolute_expiry(delay, now);
  if (at <= now) {
    // Immediate (memcached's oldest_cas): everything written so far has a smaller CAS. An
    // immediate flush also cancels a pending delayed one, as in memcached.
    dead_below_cas = std::max(dead_below_cas, cas_mark);
    pending_through_time = 0;
    return;
  }
  pending_through_time = at - 1;  // memcached: oldest_live = realtime(exptime) - 1
}

std::string FlushState::encode() const {
  std::string s(16, '\0');
  bin::store64(s.data(), dead_below_cas);
  bin::store32(s.data() + 8, dead_through_time);
  bin::store32(s.data() + 12, pending_through_time);
  return s;
}

bool FlushState::decode(std::string_view s) {
  if (s.size() != 16) return false;
  dead_below_cas = bin::load64(s.data());
  dead_through_time = bin::load32(s.data() + 8);
  pending_through_time = bin::load32(s.data() + 12);
  return true;
}

}  // namespace rend::l2
