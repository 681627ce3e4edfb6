// worker/tier_rules.h against docs/tiers.md: the page shows exactly the rows the worker
// interprets, and every command that reads or writes a key has a row in each tiered mode.
#include "worker/tier_rules.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/protocol/command_traits.h"

namespace rend::worker {
namespace {

using proto::Command;

std::string name(Command c) { return std::string(proto::traits(c).name); }
std::string name(TierMode m) {
  return m == TierMode::kL1L2 ? "l1l2" : m == TierMode::kL1L2Batch ? "l1l2batch" : "l1only";
}
std::string name(FirstTier t) { return t == FirstTier::kL1 ? "L1" : "L2"; }
std::string name(L2Read r) { return r == L2Read::kGetK ? "GetK" : r == L2Read::kGetE ? "GetE" : "GatK"; }
std::string name(L1Step s) {
  switch (s) {
    case L1Step::kNone: return "none";
    case L1Step::kSet: return "set";
    case L1Step::kReplace: return "replace";
    case L1Step::kAdd: return "add";
    case L1Step::kTouch: return "touch";
    case L1Step::kTombstone: return "tombstone";
  }
  return "?";
}
std::string name(L2Down d) { return d == L2Down::kL1Answers ? "L1 answers" : "fail"; }
std::string yes_no(bool b) { return b ? "yes" : "no"; }

std::string row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& c : cells) out += " " + c + " |";
  return out;
}

// The table rows of docs/tiers.md that follow `marker` (header and separator lines skipped).
std::vector<std::string> doc_rows(const std::string& marker) {
  std::ifstream in(std::string(REND_SOURCE_DIR) + "/docs/tiers.md");
  EXPECT_TRUE(in.good()) << "docs/tiers.md not found under " << REND_SOURCE_DIR;
  std::vector<std::string> rows;
  std::string line;
  bool in_table = false;
  int skipped = 0;
  while (std::getline(in, line)) {
    if (!in_table) {
      in_table = line.find(marker) != std::string::npos;
      continue;
    }
    if (line.empty() || line[0] != '|') break;
    if (skipped < 2) {
      ++skipped;
      continue;
    }
    rows.push_back(line);
  }
  return rows;
}

TEST(TierRules, TheReadTableOfTheDocsIsTheHeaders) {
  std::vector<std::string> expected;
  for (const ReadRule& r : kReadRules) {
    expected.push_back(
        row({name(r.command), name(r.mode), name(r.first), name(r.l2_read), name(r.after_l2_hit), name(r.after_l2_miss),
             yes_no(r.touch_l2_on_l1_hit), yes_no(r.track_races), name(r.l2_down)}));
  }
  EXPECT_EQ(doc_rows("<!-- reads:"), expected);
}

TEST(TierRules, TheWriteTableOfTheDocsIsTheHeaders) {
  std::vector<std::string> expected;
  for (const WriteRule& r : kWriteRules) {
    expected.push_back(row({name(r.command), name(r.mode), name(r.after_l2_success), name(r.after_l2_refusal),
                            name(r.after_l2_error), yes_no(r.l1_miss_is_fine)}));
  }
  EXPECT_EQ(doc_rows("<!-- writes:"), expected);
}

TEST(TierRules, EveryCommandOnAKeyHasOneRowInEachTieredMode) {
  for (const proto::CommandTraits& t : proto::kCommandTraits) {
    // The meta commands are rend-l2's to execute; what L1 does after them is TieredMeta's
    // (worker/tiered_meta.cc, docs/tiers.md "Meta commands"), not a row here.
    const bool meta = t.command >= proto::Command::kMetaGet && t.command <= proto::Command::kMetaDebug;
    for (TierMode mode : {TierMode::kL1L2, TierMode::kL1L2Batch}) {
      if (meta) continue;
      int reads = 0, writes = 0;
      for (const ReadRule& r : kReadRules) reads += r.command == t.command && r.mode == mode;
      for (const WriteRule& r : kWriteRules) writes += r.command == t.command && r.mode == mode;
      const std::string what = name(t.command) + " in " + name(mode);
      if (t.reads_key) {
        EXPECT_EQ(reads, 1) << what;  // a gat reads, and its TTL change is part of its read row
        EXPECT_EQ(writes, 0) << what;
      } else if (t.writes_key) {
        EXPECT_EQ(writes, 1) << what;
        EXPECT_EQ(reads, 0) << what;
      } else {
        EXPECT_EQ(reads + writes, 0) << what << " touches no key and has no row";
      }
    }
  }
}

TEST(TierRules, TheRulesKeepTheirPrinciples) {
  for (const WriteRule& r : kWriteRules) {
    // The batch port never creates an L1 copy.
    if (r.mode == TierMode::kL1L2Batch) {
      EXPECT_NE(r.after_l2_success, L1Step::kSet) << name(r.command);
    }
    // Only a set (which creates L1's copy) may not miss: anything else finding nothing is fine.
    EXPECT_EQ(r.l1_miss_is_fine, r.after_l2_success != L1Step::kSet) << name(r.command);
  }
  for (const ReadRule& r : kReadRules) {
    // Only the main port backfills, and only after asking L1 first.
    if (r.after_l2_hit == L1Step::kAdd) {
      EXPECT_EQ(r.mode, TierMode::kL1L2) << name(r.command);
      EXPECT_EQ(r.first, FirstTier::kL1) << name(r.command);
    }
    // A CAS is always L2's.
    if (proto::traits(r.command).returns_cas) {
      EXPECT_EQ(r.first, FirstTier::kL2) << name(r.command);
    }
  }
}

}  // namespace
}  // namespace rend::worker
