// How long a tiered step of one worker may still land in L1 after L2 applied the write (or
// answered the read) it follows: L2's answer counts only if it came within l2's timeout, and an
// L1 step not answered within L1's timeout is buried. Two seconds on top: one for memcached's
// whole-second clock, one to spare.
//
// Two things are sized by it: an L1 tombstone's life (worker/l1_envelope.h), and how far back
// rend-l2 looks for another process's write of the same key (l2/write_history.h), after which a
// worker must bury its own L1 copy once more (worker/tiered.cc).
#pragma once

#include <cstdint>

#include "common/config.h"

namespace rend {

inline int64_t tier_race_window_ms(const Config& config) {
  const int64_t ms = int64_t{config.l1.timeout_ms} + int64_t{config.l2.backend.timeout_ms};
  return ((ms + 999) / 1000 + 2) * 1000;
}

}  // namespace rend
