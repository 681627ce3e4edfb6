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
  // Intra-L0 compaction merges at least 4 flushed files (level0_file_num_compaction_trigger) of
  // about one memtable each; capping it at 4 memtables keeps merged files at 1/16 of the budget.
  p.max_compaction_bytes = 4 * p.write_buffer_size;
  p.max_total_wal_size = 4 * p.write_buffer_size;
  p.misc_reserve = std::clamp<uint64_t>(max_bytes / 32, 1 * kMiB, 16 * kMiB);
  // Worst moment: WAL of every memtable plus the one being switched to, a flush output and a
  // compaction output existing next to their inputs.
  const uint64_t transient = (p.max_write_buffer_number + 1) * p.write_buffer_size + p.write_buffer_size +
                             p.max_compaction_bytes;
  const uint64_t reserve = transient + p.misc_reserve;
  const uint64_t floor = max_bytes / 4;
  p.sst_budget = max_bytes > reserve + floor ? max_bytes - reserve : floor;
  return p;
}

}  // namespace rend::l2
