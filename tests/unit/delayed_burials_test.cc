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
    d.run_due(now, [this](std::string k) { keys.push_back(std::move(k)); }, [this] { ++flushes; });
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

TEST(DelayedBurials, PastItsLimitOneFlushAtTheLatestDueTimeStandsForAll) {
  DelayedBurials d(5000, 2);
  Buried b;
  d.add("a", 1000);
  d.add("b", 1000);
  d.add("c", 2000);  // over the limit: a flush due at 7000 replaces a, b and c
  d.add("d", 3000);  // pushes the flush to 8000
  b.run(d, 7000);
  EXPECT_TRUE(b.keys.empty()) << "the flush covers them; none is buried on its own";
  EXPECT_EQ(b.flushes, 0) << "not before the last key's window has passed";
  b.run(d, 8000);
  EXPECT_EQ(b.flushes, 1);
  EXPECT_TRUE(d.empty());
  d.add("e", 9000);
  b.run(d, 14000);
  EXPECT_EQ(b.keys, std::vector<std::string>{"e"}) << "back to single keys after the flush";
}

}  // namespace
}  // namespace rend::worker
