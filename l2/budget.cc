#include "l2/budget.h"

#include <algorithm>

namespace rend::l2 {

namespace {
constexpr uint64_t kMiB = 1024 * 1024;
}

BudgetPlan plan_budget(uint64_t max_bytes) {
  BudgetPlan p;
  // ~1/64 of the budget per memtable: small enough that one flush or one compaction is a small
  // step past the limit, large enough that a 10 GiB budget is not thousands of tiny files.
  p.write_buffer_size = std::clamp<uint64_t>(max_bytes / 64, 1 * kMiB, 64 * kMiB);
  p.max_write_buffer_number = 3;
  // The TableMerger merges files in tiers up to this size: 1/16 of the budget, so a file FIFO
  // deletes is a small step of the data, and at least one merge of 4 memtables.
  p.max_merge_bytes = std::max<uint64_t>(4 * p.write_buffer_size, max_bytes / 16);
  p.max_total_wal_size = 4 * p.write_buffer_size;
  p.misc_reserve = std::clamp<uint64_t>(max_bytes / 32, 1 * kMiB, 16 * kMiB);
  // Worst moment: WAL of every memtable plus the one being switched to, a flush output and a
  // merge's output existing next to its inputs.
  const uint64_t transient =
      (p.max_write_buffer_number + 1) * p.write_buffer_size + p.write_buffer_size + p.max_merge_bytes;
  const uint64_t reserve = transient + p.misc_reserve;
  const uint64_t floor = max_bytes / 4;
  p.sst_budget = max_bytes > reserve + floor ? max_bytes - reserve : floor;
  return p;
}

}  // namespace rend::l2
