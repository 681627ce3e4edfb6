// The worker's tiered paths in process, against scripted backends (worker_harness.h): what each
// tier is asked and what the client hears when L2 or L1 is down, times out, or races.
#include <gtest/gtest.h>

#include "common/protocol/binary_format.h"
#include "common/race_window.h"
#include "tests/unit/worker/worker_harness.h"
#include "worker/l1_envelope.h"

namespace rend::worker::testing {
namespace {

namespace bin = proto::bin;

constexpr const char* kSet = "set k 3 0 1\r\nv\r\n";

std::vector<uint8_t> opcodes(const FakeBackend& b, const std::string& key) {
  std::vector<uint8_t> out;
  for (const SeenRequest& r : b.seen_for(key)) out.push_back(bin::loud_opcode(r.opcode));
  return out;
}

bool is_tombstone(const FakeBackend& l1, const std::string& key) {
  auto it = l1.items.find(key);
  return it != l1.items.end() && !l1_envelope_valid(it->second.value);
}

// ---- writes --------------------------------------------------------------------------------

TEST(TieredWrite, SetGoesToL2FirstThenL1WithL2sCas) {
  WorkerHarness h;
  EXPECT_EQ(h.call(kSet), "STORED\r\n");
  ASSERT_EQ(opcodes(h.l2(), "k"), std::vector<uint8_t>{bin::kSet});
  EXPECT_NE(h.l2().seen[0].data_type & bin::kDataTypeTrackRaces, 0) << "rend-l2 tracks every tiered write";
  ASSERT_EQ(opcodes(h.l1(), "k"), std::vector<uint8_t>{bin::kSet});
  const FakeItem& l1 = h.l1().items.at("k");
  EXPECT_EQ(l1_envelope_cas(l1.value), h.l2().items.at("k").cas);
  EXPECT_EQ(l1_envelope_value(l1.value), "v");
  EXPECT_EQ(l1.flags, 3u);
  EXPECT_EQ(h.l1().seen[0].data_type, 0) << "L1 is plain memcached";
}

TEST(TieredWrite, L2DownFailsTheWriteAndLeavesL1Alone) {
  WorkerHarness h;
  h.l2().set_up(false);
  EXPECT_EQ(h.call(kSet), "SERVER_ERROR backend unavailable\r\n");
  EXPECT_TRUE(h.l1().seen.empty());
  EXPECT_TRUE(h.l1().buried.empty()) << "a write L2 refused did not happen: nothing to bury";
  EXPECT_FALSE(h.worker().burials_pending());
}

TEST(TieredWrite, L2TimeoutBuriesL1NowAndAgainAfterTheRaceWindow) {
  WorkerHarness h;
  h.l2().hold();
  const int c = h.connect();
  h.send(c, kSet);
  ASSERT_TRUE(h.run_until([&] { return h.l2().outstanding() == 1; }));
  h.l2().fail_outstanding(BackendFailure::kTimeout, /*applied=*/true);
  EXPECT_EQ(h.call(c, ""), "SERVER_ERROR backend timeout\r\n");
  EXPECT_EQ(h.l1().buried, std::vector<std::string>{"k"}) << "L2 may have applied it: L1's copy goes";
  ASSERT_TRUE(h.worker().burials_pending());
  h.worker().run_due_burials(uv_now(h.worker().loop()) + tier_race_window_ms(h.worker().config()) + 1000);
  EXPECT_EQ(h.l1().buried, (std::vector<std::string>{"k", "k"}));
  EXPECT_FALSE(h.worker().burials_pending());
}

TEST(TieredWrite, L1DownAfterL2TookTheWriteStillStoresAndBuries) {
  WorkerHarness h;
  h.l1().set_up(false);
  EXPECT_EQ(h.call(kSet), "STORED\r\n") << "L2 is authoritative";
  EXPECT_EQ(h.l2().items.at("k").value, "v");
  EXPECT_EQ(h.l1().buried, std::vector<std::string>{"k"}) << "memcached may still hold the old value";
}

TEST(TieredWrite, L1UpdateTimingOutBuriesTheKey) {
  WorkerHarness h;
  h.l1().hold();
  const int c = h.connect();
  h.send(c, kSet);
  ASSERT_TRUE(h.run_until([&] { return h.l1().outstanding() == 1; }));
  EXPECT_EQ(h.l2().items.count("k"), 1u);
  h.l1().fail_outstanding(BackendFailure::kTimeout, /*applied=*/false);
  EXPECT_EQ(h.call(c, ""), "STORED\r\n");
  EXPECT_EQ(h.l1().buried, std::vector<std::string>{"k"});
}

TEST(TieredWrite, RacedWriteIsBuriedAgainOnceTheWindowHasPassed) {
  WorkerHarness h;
  h.l2().raced_keys.insert("k");
  EXPECT_EQ(h.call(kSet), "STORED\r\n");
  EXPECT_TRUE(h.l1().buried.empty()) << "not before the window: the racing worker's step may still land";
  ASSERT_TRUE(h.worker().burials_pending());
  h.worker().run_due_burials(uv_now(h.worker().loop()) + tier_race_window_ms(h.worker().config()) + 1000);
  EXPECT_EQ(h.l1().buried, std::vector<std::string>{"k"});
  EXPECT_TRUE(is_tombstone(h.l1(), "k"));
  // The next read skips the tombstone and is served by L2 (the backfill's add fails on it).
  EXPECT_EQ(h.call("get k\r\n", "END\r\n"), "VALUE k 3 1\r\nv\r\nEND\r\n");
  EXPECT_TRUE(is_tombstone(h.l1(), "k"));
}

TEST(TieredWrite, DeleteLeavesATombstoneThatOutlivesABackfill) {
  WorkerHarness h;
  EXPECT_EQ(h.call(kSet), "STORED\r\n");
  EXPECT_EQ(h.call("delete k\r\n"), "DELETED\r\n");
  EXPECT_EQ(h.l2().items.count("k"), 0u);
  ASSERT_TRUE(is_tombstone(h.l1(), "k"));
  const SeenRequest tombstone = h.l1().seen_for("k").back();  // a copy: seen_for returns a temporary
  EXPECT_EQ(tombstone.opcode, bin::kSet);
  EXPECT_EQ(tombstone.exptime(), l1_tombstone_ttl_s(h.worker().config()));
}

TEST(TieredWrite, BatchPortWritesOnlyRefreshCopiesL1Holds) {
  WorkerHarness h;
  const int batch = h.connect(/*batch=*/true);
  EXPECT_EQ(h.call(batch, kSet), "STORED\r\n");
  EXPECT_EQ(opcodes(h.l1(), "k"), std::vector<uint8_t>{bin::kReplace});
  EXPECT_EQ(h.l1().items.count("k"), 0u) << "no L1 churn from bulk writes";
  EXPECT_EQ(h.call(kSet), "STORED\r\n");  // the main port puts a copy in L1
  EXPECT_EQ(h.call(batch, "set k 0 0 2\r\nv2\r\n"), "STORED\r\n");
  EXPECT_EQ(l1_envelope_value(h.l1().items.at("k").value), "v2") << "a copy L1 holds is refreshed";
}

TEST(TieredWrite, TouchL2RefusesBuriesL1ButAnL2ErrorLeavesIt) {
  WorkerHarness h;
  EXPECT_EQ(h.call(kSet), "STORED\r\n");
  h.l2().items.erase("k");  // evicted from L2
  EXPECT_EQ(h.call("touch k 100\r\n"), "NOT_FOUND\r\n");
  EXPECT_TRUE(is_tombstone(h.l1(), "k")) << "L1's copy must not outlive L2's";

  EXPECT_EQ(h.call("set j 0 0 1\r\nw\r\n"), "STORED\r\n");
  h.l2().status_override = [](const SeenRequest& r) -> std::optional<uint16_t> {
    if (bin::loud_opcode(r.opcode) == bin::kTouch) return bin::kOutOfMemory;
    return std::nullopt;
  };
  EXPECT_EQ(h.call("touch j 100\r\n"), "SERVER_ERROR out of memory storing object\r\n");
  EXPECT_FALSE(is_tombstone(h.l1(), "j")) << "L2 failed, it did not refuse: L1's copy stands";
}

TEST(TieredWrite, PipelinedWritesAndReadsOfOneKeyStayInOrder) {
  WorkerHarness h;
  h.l2().hold();
  const int c = h.connect();
  h.send(c, "set k 0 0 1\r\na\r\nset k 0 0 1\r\nb\r\nget k\r\n");
  ASSERT_TRUE(h.run_until([&] { return h.l2().outstanding() == 1; }));
  h.run_for(5);
  EXPECT_EQ(h.l2().seen.size(), 1u) << "the second set waits for the first (key lock)";
  EXPECT_TRUE(h.l1().seen.empty()) << "the get waits for both";
  h.l2().release();
  EXPECT_EQ(h.call(c, "", "END\r\n"), "STORED\r\nSTORED\r\nVALUE k 0 1\r\nb\r\nEND\r\n");
}

// ---- reads ---------------------------------------------------------------------------------

TEST(TieredRead, L1MissL2HitBackfillsL1WithL2sCasAndExpiry) {
  WorkerHarness h;
  h.l2().items["k"] = FakeItem{"v", 7, 2000000000, 77};
  EXPECT_EQ(h.call("get k\r\n", "END\r\n"), "VALUE k 7 1\r\nv\r\nEND\r\n");
  EXPECT_EQ(opcodes(h.l1(), "k"), (std::vector<uint8_t>{bin::kGetK, bin::kAdd}));
  EXPECT_EQ(opcodes(h.l2(), "k"), std::vector<uint8_t>{bin::kGetE});
  const SeenRequest add = h.l1().seen_for("k").back();  // a copy: seen_for returns a temporary
  EXPECT_EQ(add.exptime(), 2000000000u) << "the L1 copy must not outlive L2's";
  EXPECT_EQ(add.flags(), 7u);
  EXPECT_EQ(l1_envelope_cas(add.value), 77u);
  // The second read is an L1 hit, with L2's CAS.
  EXPECT_EQ(h.call("gets k\r\n", "END\r\n"), "VALUE k 7 1 77\r\nv\r\nEND\r\n");
  EXPECT_EQ(h.call("get k\r\n", "END\r\n"), "VALUE k 7 1\r\nv\r\nEND\r\n");
  EXPECT_EQ(opcodes(h.l2(), "k").size(), 2u) << "gets asks L2; the last get is L1's";
}

TEST(TieredRead, L2DownL1AnswersAlone) {
  WorkerHarness h;
  EXPECT_EQ(h.call(kSet), "STORED\r\n");
  h.l2().set_up(false);
  EXPECT_EQ(h.call("get k\r\n", "END\r\n"), "VALUE k 3 1\r\nv\r\nEND\r\n");
  EXPECT_EQ(h.call("get missing\r\n", "END\r\n"), "END\r\n") << "a miss is a miss";
  EXPECT_EQ(h.call("gets k\r\n", "END\r\n"),
            "VALUE k 3 1 " + std::to_string(h.l2().items.at("k").cas) + "\r\nv\r\nEND\r\n")
      << "gets asks L2 first, then falls back to L1's copy (with L2's CAS)";
}

TEST(TieredRead, L1DownL2AnswersWithoutBackfill) {
  WorkerHarness h;
  h.l2().items["k"] = FakeItem{"v", 0, 0, 5};
  h.l1().set_up(false);
  EXPECT_EQ(h.call("get k\r\n", "END\r\n"), "VALUE k 0 1\r\nv\r\nEND\r\n");
  EXPECT_TRUE(h.l1().seen.empty());
}

TEST(TieredRead, BothTiersDownIsAServerError) {
  WorkerHarness h;
  h.l1().set_up(false);
  h.l2().set_up(false);
  EXPECT_EQ(h.call("get k\r\n"), "SERVER_ERROR backend unavailable\r\n");
}

TEST(TieredRead, L2TimeoutAfterAnL1MissIsAMiss) {
  WorkerHarness h;
  h.l2().hold();
  const int c = h.connect();
  h.send(c, "get k\r\n");
  ASSERT_TRUE(h.run_until([&] { return h.l2().outstanding() == 1; }));
  h.l2().fail_outstanding(BackendFailure::kTimeout, false);
  EXPECT_EQ(h.call(c, "", "END\r\n"), "END\r\n");
}

TEST(TieredRead, BackfillLosesToATombstone) {
  WorkerHarness h;
  h.l2().items["k"] = FakeItem{"old", 0, 0, 9};
  h.l1().bury("k");  // a write on another worker left a tombstone
  EXPECT_EQ(h.call("get k\r\n", "END\r\n"), "VALUE k 0 3\r\nold\r\nEND\r\n");
  EXPECT_EQ(opcodes(h.l1(), "k"), (std::vector<uint8_t>{bin::kGetK, bin::kAdd}));
  EXPECT_TRUE(is_tombstone(h.l1(), "k")) << "the add failed on it, as it must";
}

TEST(TieredRead, BatchPortReadsDoNotBackfill) {
  WorkerHarness h;
  h.l2().items["k"] = FakeItem{"v", 0, 0, 5};
  EXPECT_EQ(h.call(h.connect(true), "get k\r\n", "END\r\n"), "VALUE k 0 1\r\nv\r\nEND\r\n");
  EXPECT_EQ(opcodes(h.l1(), "k"), std::vector<uint8_t>{bin::kGetK});
  EXPECT_EQ(h.l1().items.count("k"), 0u);
}

TEST(TieredRead, GatsWhoseKeyL2LostBuriesL1sCopy) {
  WorkerHarness h;
  EXPECT_EQ(h.call(kSet), "STORED\r\n");
  h.l2().items.erase("k");
  EXPECT_EQ(h.call("gats 100 k\r\n", "END\r\n"), "END\r\n");
  EXPECT_TRUE(is_tombstone(h.l1(), "k"));
}

TEST(TieredRead, MultiKeyReadSpreadsOverConnectionsAndKeepsOrder) {
  WorkerHarness h({{"l1", {{"connections", 2}}}, {"l2", {{"connections", 2}}}});
  for (const char* k : {"a", "b", "c", "d"}) h.l2(0).items[k] = h.l2(1).items[k] = FakeItem{k, 0, 0, 1};
  EXPECT_EQ(h.call("get d a missing c b\r\n", "END\r\n"),
            "VALUE d 0 1\r\nd\r\nVALUE a 0 1\r\na\r\nVALUE c 0 1\r\nc\r\nVALUE b 0 1\r\nb\r\nEND\r\n");
  EXPECT_FALSE(h.l2(0).seen.empty());
  EXPECT_FALSE(h.l2(1).seen.empty()) << "keys map to both connections";
}

// ---- l1only ---------------------------------------------------------------------------------

TEST(L1Only, MultiGetWithOneConnectionDownFailsTheReply) {
  WorkerHarness h({{"l2", {{"enabled", false}}}, {"l1", {{"connections", 2}}}});
  for (const char* k : {"a", "b", "c", "d"}) h.l1(0).items[k] = h.l1(1).items[k] = FakeItem{k, 0, 0, 1};
  EXPECT_EQ(h.call("get a b c d\r\n", "END\r\n"),
            "VALUE a 0 1\r\na\r\nVALUE b 0 1\r\nb\r\nVALUE c 0 1\r\nc\r\nVALUE d 0 1\r\nd\r\nEND\r\n");
  h.l1(1).set_up(false);
  EXPECT_EQ(h.call("get a b c d\r\n"), "SERVER_ERROR backend unavailable\r\n");
}

TEST(L1Only, FlushAllReachesEveryConnection) {
  WorkerHarness h({{"l2", {{"enabled", false}}}, {"l1", {{"connections", 2}}}});
  EXPECT_EQ(h.call("flush_all\r\n"), "OK\r\n");
  EXPECT_EQ(h.l1(0).seen.back().opcode, bin::kFlush);
  EXPECT_EQ(h.l1(1).seen.back().opcode, bin::kFlush);
}

}  // namespace
}  // namespace rend::worker::testing
