#include "common/request_metrics.h"

namespace rend {

std::string_view tier_name(Tier t) {
  switch (t) {
    case Tier::kClient: return "client";
    case Tier::kL1: return "l1";
    case Tier::kL2: return "l2";
    default: return "unknown";
  }
}

std::string_view metric_command_name(MetricCommand c) {
  static constexpr std::string_view names[] = {"get",     "gets",      "gat",     "gats",    "gete",   "set",   "add",
                                               "replace", "append",    "prepend", "cas",     "delete", "incr",  "decr",
                                               "touch",   "flush_all", "stats",   "version", "noop",   "other", "mg",
                                               "ms",      "md",        "ma",      "me"};
  return names[static_cast<size_t>(c)];
}

std::string_view result_name(Result r) {
  static constexpr std::string_view names[] = {"hit", "miss", "stored", "not_stored", "exists", "ok", "error"};
  return names[static_cast<size_t>(r)];
}

}  // namespace rend
