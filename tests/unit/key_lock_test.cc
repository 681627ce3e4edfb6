#include "worker/key_lock.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace rend::worker {
namespace {

TEST(KeyLock, ReadersShareAWriterWaitsAndWaitersRunInArrivalOrder) {
  KeyLock lock;
  std::vector<std::string> ran;
  lock.acquire("k", false, [&] { ran.push_back("r1"); });
  lock.acquire("k", false, [&] { ran.push_back("r2"); });
  lock.acquire("k", true, [&] { ran.push_back("w"); });
  lock.acquire("k", false, [&] { ran.push_back("r3"); });  // behind the writer, not beside r1
  lock.acquire("other", true, [&] { ran.push_back("o"); });
  EXPECT_EQ(ran, (std::vector<std::string>{"r1", "r2", "o"}));
  lock.release("k", false);
  EXPECT_EQ(ran.size(), 3u) << "one reader still holds the key";
  lock.release("k", false);
  EXPECT_EQ(ran.back(), "w");
  lock.release("k", true);
  EXPECT_EQ(ran.back(), "r3");
  lock.release("k", false);
  lock.release("other", true);
  EXPECT_EQ(lock.keys_held(), 0u) << "keys with nothing in progress hold no memory";
}

TEST(KeyLock, ALongChainOfWaitersThatFinishAtOnceDoesNotNest) {
  // Each waiter releases inside its start, as an op does when its backend is down. Nested, this
  // many would overflow the stack; the hand-off must run them one after another.
  KeyLock lock;
  constexpr int kWaiters = 300000;
  int started = 0;
  int max_depth = 0;
  int depth = 0;
  lock.acquire("k", true, [] {});
  for (int i = 0; i < kWaiters; ++i) {
    lock.acquire("k", true, [&] {
      ++started;
      ++depth;
      max_depth = std::max(max_depth, depth);
      lock.release("k", true);
      --depth;
    });
  }
  lock.release("k", true);
  EXPECT_EQ(started, kWaiters);
  EXPECT_EQ(max_depth, 1);
  EXPECT_EQ(lock.keys_held(), 0u);
}

}  // namespace
}  // namespace rend::worker
