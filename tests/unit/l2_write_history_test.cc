#include "l2/write_history.h"

#include <gtest/gtest.h>

#include <climits>
#include <string>

namespace rend::l2 {
namespace {

constexpr int64_t kTrustEmpty = INT64_MIN / 2;

TEST(WriteHistory, FlagsAWriteAfterAnotherProcesssAccessWithinTheWindow) {
  WriteHistory h(5000, kTrustEmpty);
  EXPECT_FALSE(h.note_write("k", 1, 1000)) << "the first write of a key";
  EXPECT_FALSE(h.note_write("k", 1, 1100)) << "one process orders its own writes";
  EXPECT_TRUE(h.note_write("k", 2, 1200)) << "another process 100 ms later";
  EXPECT_TRUE(h.note_write("k", 1, 1300)) << "and back: each is the later of a racing pair";
  EXPECT_FALSE(h.note_write("k", 2, 1300 + 5000)) << "once the window has passed";
  EXPECT_FALSE(h.note_write("other", 3, 6400)) << "keys are apart";
}

TEST(WriteHistory, ABackfillingReadCountsAndAProcesssOwnReadDoesNotHideAnotherProcesssWrite) {
  WriteHistory h(5000, kTrustEmpty);
  h.note_read("r", 1, 1000);
  EXPECT_TRUE(h.note_write("r", 2, 1500)) << "a write after another worker's backfilling read";
  // Process 2 wrote, then process 1 read; process 1's write must still see process 2's write.
  h.note_read("r", 1, 1600);
  EXPECT_TRUE(h.note_write("r", 1, 1700));
  h.note_read("s", 1, 1000);
  EXPECT_FALSE(h.note_write("s", 1, 1100)) << "its own read";
  EXPECT_FALSE(h.note_write("t", 0, 1000)) << "accessor 0 is not noted";
  EXPECT_FALSE(h.note_write("t", 1, 1001));
}

TEST(WriteHistory, RightAfterStartEveryWriteCountsAsRaced) {
  WriteHistory h(5000, 3000);
  h.note_read("k", 1, 1500);
  EXPECT_TRUE(h.note_write("k", 1, 2000)) << "what came before the start is unknown";
  EXPECT_FALSE(h.note_write("k", 1, 3000));
}

TEST(WriteHistory, AFullBucketFlagsItsKeysRatherThanForgetARace) {
  // One bucket of 4 ways: a fifth live key pushes out the oldest, whose next write by another
  // process must still be flagged (spuriously flagging the bucket's other keys is the price).
  WriteHistory h(5000, kTrustEmpty, 1);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(h.note_write("k" + std::to_string(i), 1, 1000 + i));
  EXPECT_FALSE(h.note_write("k4", 1, 1010)) << "evicts k0 (still live)";
  EXPECT_TRUE(h.note_write("k0", 2, 1020)) << "k0's accessor was forgotten: assume a race";
  EXPECT_TRUE(h.note_write("fresh", 1, 1030)) << "any key of that bucket, for a window";
  EXPECT_FALSE(h.note_write("later", 1, 1030 + 5000)) << "not once the window has passed";
  EXPECT_EQ(h.overflows(), 3u);
}

TEST(WriteHistory, ExpiredEntriesMakeRoomWithoutFlagging) {
  WriteHistory h(5000, kTrustEmpty, 1);
  for (int i = 0; i < 4; ++i) h.note_write("k" + std::to_string(i), 1, 1000);
  EXPECT_FALSE(h.note_write("k4", 2, 7000)) << "every entry had left the window";
  EXPECT_FALSE(h.note_write("k5", 2, 7001));
  EXPECT_EQ(h.overflows(), 0u);
}

}  // namespace
}  // namespace rend::l2
