#include "worker/delayed_burials.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace rend::worker {
namespace {

struct Buried {
  std::vector<std::string> keys;
  int flushes = 0;
  void run(DelayedBurials& d, uint64_t now) {
    d.run_due(
        now, [this](std::string k) { keys.push_back(std::move(k)); }, [this] { ++flushes; });
  }
};

TEST(DelayedBurials, BuriesEachKeyOnceItsWindowHasPassed) {
  DelayedBurials d(5000);
  Buried b;
  d.add("a", 1000);
  d.add("b", 2000);
  b.run(d, 5999);
  EXPECT_TRUE(b.keys.empty());
  b.run(d, 6000);
  EXPECT_EQ(b.keys, std::vector<std::string>{"a"});
  EXPECT_FALSE(d.empty());
  b.run(d, 7000);
  EXPECT_EQ(b.keys, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(b.flushes, 0);
}

TEST(DelayedBurials, PastItsLimitAFlushStandsForTheKeysAndIsNotPutOff) {
  DelayedBurials d(5000, 2);
  Buried b;
  d.add("a", 1000);
  d.add("b", 1000);
  d.add("c", 2000);  // over the limit: a flush due at 7000 replaces a and b
  d.add("d", 3000);  // queued on its own again, due at 8000
  d.add("e", 3000);
  d.add("f", 4000);  // over the limit again: a second flush, due at 9000; the first stays at 7000
  d.add("g", 4500);  // queued, due at 9500
  b.run(d, 6999);
  EXPECT_EQ(b.flushes, 0);
  b.run(d, 7000);
  EXPECT_EQ(b.flushes, 1) << "a steady stream of overflows does not put the flush off";
  EXPECT_TRUE(b.keys.empty()) << "the flushes cover every key before g";
  b.run(d, 9000);
  EXPECT_EQ(b.flushes, 2);
  EXPECT_FALSE(d.empty());
  b.run(d, 9500);
  EXPECT_EQ(b.keys, std::vector<std::string>{"g"});
  EXPECT_TRUE(d.empty());
}

}  // namespace
}  // namespace rend::worker
