// What the tiers do, per command and mode: DESIGN §4 as data (docs/tiers.md shows the same
// tables, and tier_rules_test fails when the two disagree or a tiered command has no row).
//
// The read and write orchestrations (tiered.cc) interpret these rows; they hold no rule of their
// own about which mode does what. Every rule follows from three principles:
//   - L2 is authoritative: a write is acknowledged only once L2 took it, and a CAS is always L2's;
//   - L1 holds only what L2 backs: where L1 cannot follow a write, its copy becomes a tombstone
//     (l1_envelope.h), which also refuses the backfill of a read racing the write;
//   - the batch port serves bulk traffic without churning L1: its writes only refresh copies L1
//     already holds, and its reads do not backfill.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "common/protocol/request.h"
#include "worker/tiered.h"

namespace rend::worker {

enum class FirstTier : uint8_t { kL1, kL2 };

// The request a read sends to L2.
enum class L2Read : uint8_t {
  kGetK,  // the value and L2's CAS
  kGetE,  // also L2's absolute expiry (what a backfill gives the L1 copy; a client's GetE)
  kGatK,  // touch and read in one step
};

// The step that brings L1 in line once L2 has answered (a write), or after a read.
enum class L1Step : uint8_t {
  kNone,
  kSet,        // store L2's new value and CAS
  kReplace,    // refresh a copy L1 already holds; none is created
  kAdd,        // backfill: store only if L1 has nothing (a racing write or tombstone wins)
  kTouch,      // give L1's copy the new TTL (a gat, so a tombstone is seen and keeps its own)
  kTombstone,  // L1 cannot follow: bury its copy
};

// What a read does when L2 cannot be reached.
enum class L2Down : uint8_t {
  kL1Answers,  // L1 alone answers (a miss is a miss), counted as an L2 fallback
  kFail,       // SERVER_ERROR: only L2 can answer this (a client's GetE)
};

// Whether a mode has an L2 behind L1: its key commands go through the rules below, its flushes
// reach L2 too, and a `cas` judged without a backend (unique 0) still asks L2 whether the key
// exists.
constexpr bool has_l2(TierMode mode) { return mode != TierMode::kL1Only; }

struct ReadRule {
  proto::Command command;
  TierMode mode;
  FirstTier first;
  L2Read l2_read;
  L1Step after_l2_hit;      // when the key came from L2 (kAdd: backfill; kTouch: L1 follows the TTL)
  L1Step after_l2_miss;     // when L2 does not have it (a gat's L1 copy must not outlive L2's)
  bool touch_l2_on_l1_hit;  // a gat answered by L1 also touches L2
  bool track_races;         // rend-l2 notes the access (its outcome may end up in L1)
  L2Down l2_down;
};

struct WriteRule {
  proto::Command command;
  TierMode mode;
  L1Step after_l2_success;
  L1Step after_l2_refusal;  // L2 answered that it did not apply it (not found, exists, not stored, not a number)
  L1Step after_l2_error;    // L2 answered with an error of its own (a failed read or write, out of memory)
  bool l1_miss_is_fine;     // an L1 step that finds nothing leaves nothing stale
};

// A write L2 failed (refused, timed out, connection lost) is answered SERVER_ERROR and L1 is not
// updated; one whose outcome is unknown (sent, then timed out or cut off) also buries L1's copy,
// now and again after the race window, since L2 may still apply it. That holds for every write, so
// it is code (TieredWrite::on_failure), not a column.

// The rows. A tiered read or write without a row is a bug that tier_rules_test catches.
// clang-format off
inline constexpr ReadRule kReadRules[] = {
    // command            mode                  first           L2 read         after L2 hit       after L2 miss        touch L2  track  L2 down
    {proto::Command::kGet,  TierMode::kL1L2,      FirstTier::kL1, L2Read::kGetE, L1Step::kAdd,     L1Step::kNone,      false,    true,  L2Down::kL1Answers},
    {proto::Command::kGet,  TierMode::kL1L2Batch, FirstTier::kL1, L2Read::kGetK, L1Step::kNone,    L1Step::kNone,      false,    false, L2Down::kL1Answers},
    {proto::Command::kGets, TierMode::kL1L2,      FirstTier::kL2, L2Read::kGetK, L1Step::kNone,    L1Step::kNone,      false,    true,  L2Down::kL1Answers},
    {proto::Command::kGets, TierMode::kL1L2Batch, FirstTier::kL2, L2Read::kGetK, L1Step::kNone,    L1Step::kNone,      false,    false, L2Down::kL1Answers},
    {proto::Command::kGat,  TierMode::kL1L2,      FirstTier::kL1, L2Read::kGatK, L1Step::kAdd,     L1Step::kNone,      true,     true,  L2Down::kL1Answers},
    {proto::Command::kGat,  TierMode::kL1L2Batch, FirstTier::kL2, L2Read::kGatK, L1Step::kTouch,   L1Step::kTombstone, false,    true,  L2Down::kL1Answers},
    {proto::Command::kGats, TierMode::kL1L2,      FirstTier::kL2, L2Read::kGatK, L1Step::kTouch,   L1Step::kTombstone, false,    true,  L2Down::kL1Answers},
    {proto::Command::kGats, TierMode::kL1L2Batch, FirstTier::kL2, L2Read::kGatK, L1Step::kTouch,   L1Step::kTombstone, false,    true,  L2Down::kL1Answers},
    {proto::Command::kGetE, TierMode::kL1L2,      FirstTier::kL2, L2Read::kGetE, L1Step::kNone,    L1Step::kNone,      false,    true,  L2Down::kFail},
    {proto::Command::kGetE, TierMode::kL1L2Batch, FirstTier::kL2, L2Read::kGetE, L1Step::kNone,    L1Step::kNone,      false,    false, L2Down::kFail},
};

inline constexpr WriteRule kWriteRules[] = {
    // command                mode                  after L2 success     after L2 refusal     after L2 error       L1 miss fine
    {proto::Command::kSet,      TierMode::kL1L2,      L1Step::kSet,       L1Step::kNone,       L1Step::kNone,       false},
    {proto::Command::kSet,      TierMode::kL1L2Batch, L1Step::kReplace,   L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kAdd,      TierMode::kL1L2,      L1Step::kSet,       L1Step::kNone,       L1Step::kNone,       false},
    {proto::Command::kAdd,      TierMode::kL1L2Batch, L1Step::kReplace,   L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kReplace,  TierMode::kL1L2,      L1Step::kReplace,   L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kReplace,  TierMode::kL1L2Batch, L1Step::kReplace,   L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kCas,      TierMode::kL1L2,      L1Step::kSet,       L1Step::kNone,       L1Step::kNone,       false},
    {proto::Command::kCas,      TierMode::kL1L2Batch, L1Step::kReplace,   L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kAppend,   TierMode::kL1L2,      L1Step::kTombstone, L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kAppend,   TierMode::kL1L2Batch, L1Step::kTombstone, L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kPrepend,  TierMode::kL1L2,      L1Step::kTombstone, L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kPrepend,  TierMode::kL1L2Batch, L1Step::kTombstone, L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kIncr,     TierMode::kL1L2,      L1Step::kTombstone, L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kIncr,     TierMode::kL1L2Batch, L1Step::kTombstone, L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kDecr,     TierMode::kL1L2,      L1Step::kTombstone, L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kDecr,     TierMode::kL1L2Batch, L1Step::kTombstone, L1Step::kNone,       L1Step::kNone,       true},
    {proto::Command::kDelete,   TierMode::kL1L2,      L1Step::kTombstone, L1Step::kTombstone,  L1Step::kTombstone,  true},
    {proto::Command::kDelete,   TierMode::kL1L2Batch, L1Step::kTombstone, L1Step::kTombstone,  L1Step::kTombstone,  true},
    {proto::Command::kTouch,    TierMode::kL1L2,      L1Step::kTouch,     L1Step::kTombstone,  L1Step::kNone,       true},
    {proto::Command::kTouch,    TierMode::kL1L2Batch, L1Step::kTouch,     L1Step::kTombstone,  L1Step::kNone,       true},
    // A set too large for the cache: L2 deletes the old value (as memcached drops it), and so does L1.
    {proto::Command::kTooLarge, TierMode::kL1L2,      L1Step::kTombstone, L1Step::kTombstone,  L1Step::kTombstone,  true},
    {proto::Command::kTooLarge, TierMode::kL1L2Batch, L1Step::kTombstone, L1Step::kTombstone,  L1Step::kTombstone,  true},
};
// clang-format on

// The row of a command in a mode; none for a command the tiers do not orchestrate.
template <typename Rule, size_t N>
std::optional<Rule> find_rule(const Rule (&rules)[N], proto::Command command, TierMode mode) {
  for (const Rule& r : rules) {
    if (r.command == command && r.mode == mode) return r;
  }
  return std::nullopt;
}

inline std::optional<ReadRule> read_rule(proto::Command command, TierMode mode) {
  return find_rule(kReadRules, command, mode);
}
inline std::optional<WriteRule> write_rule(proto::Command command, TierMode mode) {
  return find_rule(kWriteRules, command, mode);
}

}  // namespace rend::worker
