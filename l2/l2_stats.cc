#include "l2/l2_stats.h"

namespace rend::l2 {

std::string_view l2_counter_name(L2Counter c) {
  switch (c) {
#define REND_L2_NAME(name) \
  case L2Counter::name: return #name;
    REND_L2_COUNTERS(REND_L2_NAME)
#undef REND_L2_NAME
    default: return "unknown";
  }
}

void L2Stats::reset() {
  for (size_t i = 0; i < kL2CounterCount; ++i) {
    if (static_cast<L2Counter>(i) == L2Counter::curr_connections) continue;
    v_[i].store(0, std::memory_order_relaxed);
  }
}

}  // namespace rend::l2
