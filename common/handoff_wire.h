// The messages that carry a client connection from one process to another (worker to worker in a
// roll, worker to supervisor to the next rend across a restart): worker/connection_handoff.h has
// the sender and the receiver, supervisor/connection_store.h keeps them across a restart.
//
// Per connection: one message with a HandoffHeader, the socket attached (SCM_RIGHTS) and the first
// bytes of the unparsed input; then plain messages with the rest of it, `unparsed` bytes in all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace rend {

inline constexpr char kHandoffMagic[4] = {'R', 'H', 'C', '1'};
// Input bytes per message: well under a SOCK_SEQPACKET socket's default send buffer, so any
// message fits once the receiver has read what was before it.
inline constexpr size_t kHandoffChunk = 32 * 1024;
// More unparsed input than any worker buffers (a value of the largest max_item_size and its line):
// a header claiming it is not one of ours, and is refused rather than believed.
inline constexpr uint64_t kMaxHandoffUnparsed = uint64_t{1} << 30;

struct HandoffHeader {
  char magic[4];
  uint8_t tcp;
  uint8_t mode;
  uint8_t protocol;  // 0 not known yet, 1 text, 2 binary
  uint8_t has_fd;
  uint64_t swallow;
  uint64_t unparsed;
};

// The header at the start of `message`, if it is one of ours with a believable size; how many
// input bytes are still to come after this message in `rest`.
inline bool read_handoff_header(std::string_view message, HandoffHeader& h, uint64_t& rest) {
  if (message.size() < sizeof h) return false;
  std::memcpy(&h, message.data(), sizeof h);
  const uint64_t here = message.size() - sizeof h;
  if (std::memcmp(h.magic, kHandoffMagic, sizeof kHandoffMagic) != 0 || h.protocol > 2 || here > h.unparsed ||
      h.unparsed > kMaxHandoffUnparsed) {
    return false;
  }
  rest = h.unparsed - here;
  return true;
}

}  // namespace rend
