#include "worker/tiered.h"

#include "worker/tier_rules.h"
#include "worker/tiered_paths.h"

namespace rend::worker {

using proto::Command;
using proto::Request;

bool dispatch_tiered(Worker& worker, ClientConnection& conn, const Request& r, TierMode mode) {
  if (const auto rule = read_rule(r.command, mode)) {
    start_tiered_read(worker, conn, r, *rule);
    return true;
  }
  // Only a too-large set changes what is stored (it drops the old value); an add, replace,
  // append or prepend too large is refused and leaves the tiers alone.
  if (r.command == Command::kTooLarge && r.original != Command::kSet && r.original != Command::kMetaSet) return false;
  if (const auto rule = write_rule(r.command, mode)) {
    start_tiered_write(worker, conn, r, *rule);
    return true;
  }
  return false;
}

}  // namespace rend::worker
