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

#include "common/protocol/binary_format.h"

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

}  // namespace rend::worker
