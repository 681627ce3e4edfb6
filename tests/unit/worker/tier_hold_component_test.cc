// A planned restart of memcached or rend-l2, from one worker's side (Worker::hold / release):
// while held, that tier's requests are kept in the worker, in order, whether the service is up or
// not; released, they reach the new one and the clients get their replies, none an error.
#include <gtest/gtest.h>

#include <unistd.h>

#include "tests/unit/worker/worker_harness.h"
#include "worker/l1_envelope.h"

namespace rend::worker::testing {
namespace {

TEST(L1Hold, HeldRequestsWaitThroughTheRestartAndAreSentInOrder) {
  WorkerHarness h;
  EXPECT_EQ(h.call("set k 0 0 3\r\nold\r\n"), "STORED\r\n");
  h.worker().hold(Tier::kL1);
  const int fd = h.connect();
  h.send(fd, "set k 0 0 3\r\nnew\r\nget k\r\nset j 0 0 1\r\nj\r\n");
  h.run_for(200);
  // L2 took the set (it is not held); its L1 step waits, and so does everything after it.
  EXPECT_EQ(h.l1().seen_for("j").size(), 0u);
  EXPECT_EQ(l1_envelope_value(h.l1().items.at("k").value), "old");
  char scratch[64];
  EXPECT_EQ(recv(fd, scratch, sizeof scratch, MSG_DONTWAIT), -1) << "no reply while held";
  // memcached goes down and comes back meanwhile: nothing fails.
  h.l1().set_up(false);
  h.run_for(100);
  h.l1().set_up(true);
  h.worker().release(Tier::kL1);
  EXPECT_EQ(h.call(fd, "", "END\r\nSTORED\r\n"), "STORED\r\nVALUE k 0 3\r\nnew\r\nEND\r\nSTORED\r\n");
  EXPECT_EQ(l1_envelope_value(h.l1().items.at("k").value), "new");
  EXPECT_EQ(l1_envelope_value(h.l1().items.at("j").value), "j");
}

TEST(L1Hold, AReleaseWithMemcachedStillDownFailsAsAnOutageWould) {
  WorkerHarness h(nlohmann::json{{"l2", {{"enabled", false}}}});
  h.worker().hold(Tier::kL1);
  const int fd = h.connect();
  h.send(fd, "get k\r\n");
  h.run_for(100);
  h.l1().set_up(false);
  h.worker().release(Tier::kL1);
  EXPECT_EQ(h.call(fd, "", "\r\n"), "SERVER_ERROR backend unavailable\r\n");
}

TEST(L2Hold, WritesAndMissesWaitForTheNewRendL2) {
  WorkerHarness h;
  EXPECT_EQ(h.call("set k 0 0 3\r\nold\r\n"), "STORED\r\n");
  h.worker().hold(Tier::kL2);
  const int fd = h.connect();
  h.send(fd, "set k 0 0 3\r\nnew\r\nget k\r\nget absent\r\n");
  h.run_for(200);
  // A tiered write starts in L2: nothing has moved, in either tier.
  EXPECT_EQ(h.l2().seen_for("k").size(), 1u) << "only the first set reached L2";
  EXPECT_EQ(l1_envelope_value(h.l1().items.at("k").value), "old");
  char scratch[64];
  EXPECT_EQ(recv(fd, scratch, sizeof scratch, MSG_DONTWAIT), -1) << "no reply while held";
  h.l2().set_up(false);
  h.run_for(100);
  h.l2().set_up(true);
  h.worker().release(Tier::kL2);
  EXPECT_EQ(h.call(fd, "", "END\r\nEND\r\n"), "STORED\r\nVALUE k 0 3\r\nnew\r\nEND\r\nEND\r\n");
  EXPECT_EQ(h.l2().items.at("k").value, "new");
}

}  // namespace
}  // namespace rend::worker::testing
