// How the tiered modes store a value in L1: [L2's CAS, 8 bytes big-endian][the value].
//
// In l1l2/l1l2batch, L1 is rend's own cache in front of L2, and L2 judges every cas. Keeping
// L2's CAS with each L1 copy lets an L1 hit report the CAS a later cas will be judged against
// (memcached clients take it from every binary get). Writes that change L2's CAS refresh or drop
// the L1 copy; a stored value too short to hold the header is not ours and reads as a miss.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/config.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/request.h"
#include "common/race_window.h"

namespace rend::worker {

inline constexpr size_t kL1EnvelopeSize = 8;

inline bool l1_envelope_valid(std::string_view stored) { return stored.size() >= kL1EnvelopeSize; }
inline uint64_t l1_envelope_cas(std::string_view stored) { return proto::bin::load64(stored.data()); }
inline std::string_view l1_envelope_value(std::string_view stored) { return stored.substr(kL1EnvelopeSize); }

inline std::string l1_envelope(uint64_t cas, std::string_view value) {
  std::string out(kL1EnvelopeSize, '\0');
  proto::bin::store64(out.data(), cas);
  out.append(value);
  return out;
}

// A tombstone: an empty L1 item (shorter than the envelope, so every read takes it for a miss)
// that a write leaves in L1 where it would otherwise delete the copy (delete, incr/decr,
// append/prepend, an L1 update that failed).
//
// Why not a plain delete: a read on another worker may have fetched the old value from L2 just
// before the write and be about to backfill it with `add`. After a delete that add succeeds, and
// the old value (a deleted one, even) would be served from L1 until evicted. The tombstone makes
// that add fail. It only has to outlive such a backfill: common/race_window.h. Meanwhile reads
// of the key go to L2 without backfilling; any set replaces it at once.
inline uint32_t l1_tombstone_ttl_s(const Config& config) {
  return static_cast<uint32_t>(tier_race_window_ms(config) / 1000);
}

// The binary set that leaves a tombstone under `key` (which the request points into).
inline proto::Request l1_tombstone_request(std::string_view key, const Config& config) {
  proto::Request r;
  r.command = proto::Command::kSet;
  r.opcode = proto::bin::kSet;
  r.key = key;
  r.exptime = l1_tombstone_ttl_s(config);
  return r;
}

}  // namespace rend::worker
