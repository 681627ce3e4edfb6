// flush_all's cutoffs, as memcached applies them.
#include <gtest/gtest.h>

#include "l2/flush_state.h"

namespace rend::l2 {
namespace {

constexpr uint32_t kNow = 1'800'000'000;

TEST(FlushState, NothingIsFlushedInitially) {
  FlushState f;
  EXPECT_FALSE(f.is_flushed(1, 0, kNow));
  EXPECT_FALSE(f.is_flushed(1, kNow, kNow));
}

TEST(FlushState, ImmediateFlushHidesEverythingWrittenBefore) {
  FlushState f;
  f.apply_flush(kNow, 0, /*cas_mark=*/100);
  EXPECT_TRUE(f.is_flushed(99, kNow, kNow));    // same second, earlier write
  EXPECT_FALSE(f.is_flushed(101, kNow, kNow));  // same second, later write
  EXPECT_FALSE(f.is_flushed(101, kNow, kNow + 1000));
}

TEST(FlushState, DelayedFlushTakesEffectAtItsTime) {
  FlushState f;
  f.apply_flush(kNow, 10, 100);  // memcached: oldest_live = now + 10 - 1
  EXPECT_FALSE(f.is_flushed(50, kNow, kNow));
  EXPECT_FALSE(f.is_flushed(50, kNow, kNow + 8));
  EXPECT_TRUE(f.is_flushed(50, kNow, kNow + 9));
  // Written before the flush time (even after the command): flushed too, as in memcached.
  EXPECT_TRUE(f.is_flushed(150, kNow + 5, kNow + 9));
  // Written after it: visible.
  EXPECT_FALSE(f.is_flushed(200, kNow + 10, kNow + 10));
}

TEST(FlushState, DelayAboveThirtyDaysIsAnAbsoluteTime) {
  FlushState f;
  f.apply_flush(kNow, kNow + 20, 100);
  EXPECT_FALSE(f.is_flushed(50, kNow, kNow + 18));
  EXPECT_TRUE(f.is_flushed(50, kNow, kNow + 19));
}

TEST(FlushState, AbsoluteTimeInThePastFlushesNow) {
  FlushState f;
  f.apply_flush(kNow, kNow - 5, 100);
  EXPECT_TRUE(f.is_flushed(99, kNow, kNow));
  EXPECT_FALSE(f.is_flushed(101, kNow, kNow));
}

TEST(FlushState, ImmediateFlushCancelsAPendingOne) {
  FlushState f;
  f.apply_flush(kNow, 100, 10);
  f.apply_flush(kNow + 1, 0, 20);
  EXPECT_TRUE(f.is_flushed(15, kNow, kNow + 1));
  EXPECT_FALSE(f.is_flushed(25, kNow + 2, kNow + 200));  // the delayed flush no longer happens
}

TEST(FlushState, AFlushThatCameDueStaysInForceAfterANewerDelayedOne) {
  FlushState f;
  f.apply_flush(kNow, 5, 10);  // due at kNow + 4
  f.apply_flush(kNow + 10, 100, 20);
  EXPECT_TRUE(f.is_flushed(15, kNow + 2, kNow + 10)) << "must not come back";
  EXPECT_FALSE(f.is_flushed(25, kNow + 10, kNow + 10));
}

TEST(FlushState, CasCutoffNeverMovesBack) {
  FlushState f;
  f.apply_flush(kNow, 0, 100);
  f.apply_flush(kNow, 0, 50);
  EXPECT_TRUE(f.is_flushed(99, kNow, kNow));
}

TEST(FlushState, EncodesAndDecodes) {
  FlushState f;
  f.apply_flush(kNow, 0, 12345678901ull);
  f.apply_flush(kNow, 30, 12345678999ull);
  FlushState g;
  ASSERT_TRUE(g.decode(f.encode()));
  EXPECT_EQ(f, g);
  EXPECT_FALSE(g.decode("short"));
}

}  // namespace
}  // namespace rend::l2
