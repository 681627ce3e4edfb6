// The TableMerger's choice of files: adjacent in age, similar in size, within the size cap, none
// busy, newest (smallest tier) first.
#include <gtest/gtest.h>

#include "l2/table_merger.h"

namespace rend::l2 {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

std::vector<TableFile> files(std::initializer_list<uint64_t> mib_newest_first) {
  std::vector<TableFile> out;
  for (uint64_t m : mib_newest_first) out.push_back({"f" + std::to_string(out.size()), m * kMiB, false});
  return out;
}

const MergePolicy kPolicy{.fanin = 4, .max_ratio = 2.5, .max_output = 64 * kMiB};

TEST(TableMerger, FewerThanFanInFilesStayAsTheyAre) {
  EXPECT_EQ(pick_merge(files({16, 16, 16}), kPolicy), std::nullopt);
}

TEST(TableMerger, FourMemtableFilesMerge) {
  EXPECT_EQ(pick_merge(files({16, 16, 16, 16}), kPolicy), (Window{0, 4}));
  EXPECT_EQ(pick_merge(files({15, 16, 16, 16, 16}), kPolicy), (Window{0, 4}));
  EXPECT_EQ(pick_merge(files({1, 1, 1, 1, 1, 1}), kPolicy), (Window{0, 4})) << "never more than fanin";
}

TEST(TableMerger, NearTheCapWhatFitsMerges) {
  // Flushes of two memtables at once: four would pass the cap, two or three still fit.
  EXPECT_EQ(pick_merge(files({30, 30, 30, 30}), kPolicy), (Window{0, 2}));
  EXPECT_EQ(pick_merge(files({20, 20, 20, 20}), kPolicy), (Window{0, 3}));
  EXPECT_EQ(pick_merge(files({40, 40, 40}), kPolicy), std::nullopt) << "one file alone is no merge";
  // Not near the cap, two similar files wait for more.
  EXPECT_EQ(pick_merge(files({4, 4, 16, 16}), MergePolicy{.fanin = 4, .max_ratio = 2.5, .max_output = 1024 * kMiB}),
            std::nullopt);
}

TEST(TableMerger, TiersDoNotMix) {
  // Three memtable files next to a file of three merged ones: the small ones wait for a fourth
  // instead of merging near the cap with the bigger one (which would rewrite it).
  EXPECT_EQ(pick_merge(files({16, 16, 16, 48}), MergePolicy{.fanin = 4, .max_ratio = 2.5, .max_output = 64 * kMiB}),
            std::nullopt);
  // Three new small files in front of merged ones: nothing to do until a fourth arrives.
  EXPECT_EQ(
      pick_merge(files({4, 4, 4, 16, 16, 16}), MergePolicy{.fanin = 4, .max_ratio = 2.5, .max_output = 1024 * kMiB}),
      std::nullopt);
  // Four of the 16 MiB tier behind three small ones: the 16s merge.
  EXPECT_EQ(pick_merge(files({4, 4, 4, 16, 16, 16, 16}),
                       MergePolicy{.fanin = 4, .max_ratio = 2.5, .max_output = 1024 * kMiB}),
            (Window{3, 4}));
}

TEST(TableMerger, NothingGrowsPastTheCap) {
  EXPECT_EQ(pick_merge(files({64, 64, 64, 64}), kPolicy), std::nullopt);
  EXPECT_EQ(pick_merge(files({33, 33, 33, 33}), kPolicy), std::nullopt) << "66 MiB > 64 MiB";
}

TEST(TableMerger, SettledLeftoversMergeWithTheirNeighbours) {
  // Behind a file of half the cap or more: a 10 and a 20 that fit together merge.
  EXPECT_EQ(pick_merge(files({60, 10, 20, 60}), kPolicy), (Window{1, 2}));
  // A leftover next to a settled file it fits with.
  EXPECT_EQ(pick_merge(files({40, 12, 60}), kPolicy), (Window{0, 2}));
  // Settled files that no longer fit with any neighbour stay.
  EXPECT_EQ(pick_merge(files({60, 40, 60, 33, 40}), kPolicy), std::nullopt);
}

TEST(TableMerger, BusyFilesAreLeftAlone) {
  auto f = files({16, 16, 16, 16, 16});
  f[0].busy = true;
  EXPECT_EQ(pick_merge(f, kPolicy), (Window{1, 4})) << "the next window";
  f[4].busy = true;
  EXPECT_EQ(pick_merge(f, kPolicy), std::nullopt);
}

TEST(TableMerger, AFileShrunkByExpiryStillMergesWithItsTier) {
  // A 16 MiB-tier file that the expiry filter halved sits between its peers.
  EXPECT_EQ(pick_merge(files({16, 8, 16, 16}), kPolicy), (Window{0, 4}));
  // Much smaller than its neighbours: not merged with them (it only costs one more file).
  EXPECT_EQ(pick_merge(files({16, 5, 16, 16}), kPolicy), std::nullopt);
  EXPECT_EQ(pick_merge(files({16, 2, 16, 16}), kPolicy), std::nullopt);
}

}  // namespace
}  // namespace rend::l2
