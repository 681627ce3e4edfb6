// The backfill admission (worker/backfill_admission.h): the sketch's counting and aging, L1's room
// from memcached's evictions, and what each policy admits.
#include "worker/backfill_admission.h"

#include <gtest/gtest.h>

#include <string>

namespace rend::worker {
namespace {

constexpr uint64_t kNow = 1'000'000;

// A frequency admission whose L1 has just evicted (so it is full).
BackfillAdmission full_l1(size_t width) {
  BackfillAdmission a(true, width);
  a.room().note_evictions(0, kNow - 1000);
  a.room().note_evictions(5, kNow);
  return a;
}

TEST(BackfillAdmission, AllAdmitsEveryKey) {
  BackfillAdmission a(false, 1024);
  EXPECT_FALSE(a.frequency());
  a.room().note_evictions(7, kNow);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(a.admit("k" + std::to_string(i), kNow));
}

TEST(BackfillAdmission, AKeySeenOnceIsRefusedAndSeenTwiceAdmitted) {
  BackfillAdmission a = full_l1(1024);
  EXPECT_FALSE(a.admit("once", kNow));
  EXPECT_TRUE(a.admit("once", kNow));
  EXPECT_TRUE(a.admit("once", kNow));
  EXPECT_FALSE(a.admit("other", kNow));
}

TEST(BackfillAdmission, AgingForgetsAKeySeenOnce) {
  BackfillAdmission a = full_l1(64);  // a window of 640 recorded misses
  EXPECT_FALSE(a.admit("old", kNow));
  for (int i = 0; i < 640; ++i) a.admit("filler-" + std::to_string(i), kNow);
  EXPECT_FALSE(a.admit("old", kNow)) << "its first miss belongs to the window that ended";
  EXPECT_TRUE(a.admit("old", kNow));
}

TEST(BackfillAdmission, WhileL1HasRoomEveryKeyIsAdmitted) {
  BackfillAdmission a(true, 1024);
  EXPECT_TRUE(a.admit("before-any-reading", kNow));
  a.room().note_evictions(0, kNow);
  EXPECT_TRUE(a.admit("never-evicted", kNow));
  a.room().note_evictions(0, kNow + 1000);
  EXPECT_TRUE(a.admit("still-none", kNow + 1000));
  a.room().note_evictions(3, kNow + 2000);
  EXPECT_FALSE(a.admit("now-full", kNow + 2000));
  // No eviction for L1Room::kFullForMs: room again (flushed, or the load has stopped).
  a.room().note_evictions(3, kNow + 2000 + L1Room::kFullForMs);
  EXPECT_TRUE(a.admit("quiet-again", kNow + 2000 + L1Room::kFullForMs));
}

TEST(L1Room, AFirstReadingOfPastEvictionsMeansFullAndANewMemcachedMeansRoom) {
  L1Room room;
  EXPECT_TRUE(room.has_room(kNow));
  room.note_evictions(100, kNow);  // a worker started against a memcached that had evicted
  EXPECT_FALSE(room.has_room(kNow + 1000));
  room.note_evictions(0, kNow + 2000);  // memcached restarted: empty, its count starts again
  EXPECT_TRUE(room.has_room(kNow + 2000));
  room.note_evictions(1, kNow + 3000);
  EXPECT_FALSE(room.has_room(kNow + 3000 + L1Room::kFullForMs - 1));
}

TEST(FrequencySketch, CountsSaturateAndHalveAtTheWindow) {
  FrequencySketch s(100);
  EXPECT_EQ(s.width(), 128u);  // a power of two
  EXPECT_EQ(s.window(), 1280u);
  const uint64_t hot = 0x1234567890abcdefULL;
  EXPECT_EQ(s.estimate(hot), 0u);
  EXPECT_EQ(s.record(hot), 1u);  // the doorkeeper
  EXPECT_EQ(s.record(hot), 2u);  // then the counters
  for (int i = 0; i < 30; ++i) s.record(hot);
  EXPECT_EQ(s.estimate(hot), 16u);  // 15 (saturated) + the doorkeeper's 1
  for (uint64_t i = 0; s.window() > 32 + i + 1; ++i) s.record(i * 0x9e3779b97f4a7c15ULL + 1);
  s.record(42);  // the window's last miss: counters halve, the doorkeeper empties
  EXPECT_EQ(s.estimate(hot), 7u);
}

TEST(FrequencySketch, KeysSeenOnceRarelyLookSeenTwice) {
  // A window's worth of distinct keys (the worst case for the doorkeeper): few pass as repeats.
  FrequencySketch s(4096);
  int repeats = 0;
  for (uint64_t i = 0; i + 1 < s.window(); ++i) repeats += s.record(i * 0x9e3779b97f4a7c15ULL + 7) >= 2 ? 1 : 0;
  EXPECT_LT(repeats, static_cast<int>(s.window() / 4));
}

}  // namespace
}  // namespace rend::worker
