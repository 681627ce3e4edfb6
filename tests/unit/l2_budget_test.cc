// The disk budget split: table files plus everything else must fit in l2.max_bytes.
#include <gtest/gtest.h>

#include "l2/budget.h"

namespace rend::l2 {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

uint64_t worst_case(const BudgetPlan& p) {
  return p.sst_budget + (p.max_write_buffer_number + 1) * p.write_buffer_size + p.write_buffer_size +
         p.max_merge_bytes + p.misc_reserve;
}

TEST(Budget, EverythingFitsForUsualBudgets) {
  for (uint64_t mb : {64ull, 256ull, 1024ull, 10240ull, 102400ull}) {
    const BudgetPlan p = plan_budget(mb * kMiB);
    EXPECT_LE(worst_case(p), mb * kMiB) << mb << " MiB";
    EXPECT_GE(p.sst_budget, mb * kMiB / 2) << "most of the budget holds data at " << mb << " MiB";
  }
}

TEST(Budget, QuarterGigabyte) {
  const BudgetPlan p = plan_budget(256 * kMiB);
  EXPECT_EQ(p.write_buffer_size, 4 * kMiB);
  EXPECT_EQ(p.max_merge_bytes, 16 * kMiB);
  EXPECT_GE(p.sst_budget, 200 * kMiB);
  EXPECT_LE(p.sst_budget, 220 * kMiB);
}

TEST(Budget, MergedFilesAreASixteenthOfLargeBudgets) {
  EXPECT_EQ(plan_budget(1024 * kMiB).max_merge_bytes, 64 * kMiB);
  const BudgetPlan p = plan_budget(1024ull * 1024 * kMiB);
  EXPECT_EQ(p.max_merge_bytes, 64ull * 1024 * kMiB);
  EXPECT_GE(p.sst_budget, 900ull * 1024 * kMiB) << "a 1 TiB budget keeps over 0.9 TiB of data";
}

TEST(Budget, MemtablesStayBetweenOneAnd64MiB) {
  EXPECT_EQ(plan_budget(16 * kMiB).write_buffer_size, 1 * kMiB);
  EXPECT_EQ(plan_budget(100ull * 1024 * kMiB).write_buffer_size, 64 * kMiB);
}

TEST(Budget, TinyBudgetsStillKeepSomeData) {
  const BudgetPlan p = plan_budget(16 * kMiB);
  EXPECT_GE(p.sst_budget, 4 * kMiB);
  EXPECT_LT(p.sst_budget, 16 * kMiB);
}

}  // namespace
}  // namespace rend::l2
