#include "l2/write_history.h"

#include <gtest/gtest.h>

#include <string>

namespace rend::l2 {
namespace {

TEST(WriteHistory, FlagsOnlyAnotherWritersWriteWithinTheWindow) {
  WriteHistory h(5000);
  EXPECT_FALSE(h.note_write("k", 1, 1000)) << "the first write of a key";
  EXPECT_FALSE(h.note_write("k", 1, 1100)) << "the same writer orders its own writes";
  EXPECT_TRUE(h.note_write("k", 2, 1200)) << "another writer 100 ms later";
  EXPECT_TRUE(h.note_write("k", 1, 1300)) << "and back: each is the later of a racing pair";
  EXPECT_FALSE(h.note_write("k", 2, 1300 + 5000)) << "once the window has passed";
  EXPECT_FALSE(h.note_write("other", 3, 6400)) << "keys are apart";
}

TEST(WriteHistory, AFullBucketFlagsItsKeysRatherThanForgetARace) {
  // One bucket of 4 ways: a fifth live key pushes out the oldest, whose next write by another
  // writer must still be flagged (spuriously flagging the bucket's other keys is the price).
  WriteHistory h(5000, 1);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(h.note_write("k" + std::to_string(i), 1, 1000 + i));
  EXPECT_FALSE(h.note_write("k4", 1, 1010)) << "evicts k0 (still live)";
  EXPECT_TRUE(h.note_write("k0", 2, 1020)) << "k0's writer was forgotten: assume a race";
  EXPECT_TRUE(h.note_write("fresh", 1, 1030)) << "any key of that bucket, for a window";
  EXPECT_FALSE(h.note_write("later", 1, 1030 + 5000)) << "not once the window has passed";
}

TEST(WriteHistory, ExpiredEntriesMakeRoomWithoutFlagging) {
  WriteHistory h(5000, 1);
  for (int i = 0; i < 4; ++i) h.note_write("k" + std::to_string(i), 1, 1000);
  EXPECT_FALSE(h.note_write("k4", 2, 7000)) << "every entry had left the window";
  EXPECT_FALSE(h.note_write("k5", 2, 7001));
}

}  // namespace
}  // namespace rend::l2
