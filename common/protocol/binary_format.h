// The memcached binary protocol wire format: opcodes, status codes and the 24-byte header.
//
// Pure data and inline helpers, no state. Everything is big-endian on the wire; the helpers here
// are the only place that converts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace rend::proto::bin {

inline constexpr uint8_t kRequestMagic = 0x80;
inline constexpr uint8_t kResponseMagic = 0x81;
inline constexpr size_t kHeaderSize = 24;

enum Opcode : uint8_t {
  kGet = 0x00,
  kSet = 0x01,
  kAdd = 0x02,
  kReplace = 0x03,
  kDelete = 0x04,
  kIncrement = 0x05,
  kDecrement = 0x06,
  kQuit = 0x07,
  kFlush = 0x08,
  kGetQ = 0x09,
  kNoop = 0x0a,
  kVersion = 0x0b,
  kGetK = 0x0c,
  kGetKQ = 0x0d,
  kAppend = 0x0e,
  kPrepend = 0x0f,
  kStat = 0x10,
  kSetQ = 0x11,
  kAddQ = 0x12,
  kReplaceQ = 0x13,
  kDeleteQ = 0x14,
  kIncrementQ = 0x15,
  kDecrementQ = 0x16,
  kQuitQ = 0x17,
  kFlushQ = 0x18,
  kAppendQ = 0x19,
  kPrependQ = 0x1a,
  kVerbosity = 0x1b,
  kTouch = 0x1c,
  kGat = 0x1d,
  kGatQ = 0x1e,
  kGatK = 0x23,
  kGatKQ = 0x24,
  // Rend's extension: get with the absolute expiry in the extras (flags u32, exptime u32).
  kGetE = 0x40,
  kGetEQ = 0x41,
};

enum Status : uint16_t {
  kSuccess = 0x0000,
  kKeyNotFound = 0x0001,
  kKeyExists = 0x0002,
  kTooLarge = 0x0003,
  kInvalidArguments = 0x0004,
  kNotStored = 0x0005,
  kDeltaBadValue = 0x0006,
  kUnknownCommand = 0x0081,
  kOutOfMemory = 0x0082,
  kNotSupported = 0x0083,
  kInternalError = 0x0084,
  kBusy = 0x0085,
  kTemporaryFailure = 0x0086,
};

// rend's extension of the binary header's data type byte (reserved, 0 in memcached), between a
// worker and rend-l2 only (l2/write_history.h): on a request, kDataTypeTrackRaces asks rend-l2
// to note the access (a write, or a read that will be backfilled into L1); on the answer to such
// a write, kDataTypeRacedWrite says another process accessed the key within the race window.
// Requests without it get data type 0 back, as from memcached; workers never relay it to clients.
inline constexpr uint8_t kDataTypeTrackRaces = 0x80;
inline constexpr uint8_t kDataTypeRacedWrite = 0x80;
// On the answer to a tracked read: the item carries meta marks (stale, a win token sent) that an
// L1 copy would not show, so it must not be backfilled (common/item_rules.h).
inline constexpr uint8_t kDataTypeNoCopy = 0x40;

// The body memcached 1.6 puts in an error response for each status (write_bin_error).
std::string_view status_message(uint16_t status);

struct Header {
  uint8_t magic = 0;
  uint8_t opcode = 0;
  uint16_t key_length = 0;
  uint8_t extras_length = 0;
  uint8_t data_type = 0;
  uint16_t status_or_vbucket = 0;
  uint32_t body_length = 0;
  uint32_t opaque = 0;
  uint64_t cas = 0;
};

inline uint16_t load16(const char* p) {
  auto u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>((u[0] << 8) | u[1]);
}
inline uint32_t load32(const char* p) {
  auto u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}
inline uint64_t load64(const char* p) { return (uint64_t{load32(p)} << 32) | load32(p + 4); }

inline void store16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v);
}
inline void store32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}
inline void store64(char* p, uint64_t v) {
  store32(p, static_cast<uint32_t>(v >> 32));
  store32(p + 4, static_cast<uint32_t>(v));
}

inline Header decode_header(const char* p) {
  Header h;
  h.magic = static_cast<uint8_t>(p[0]);
  h.opcode = static_cast<uint8_t>(p[1]);
  h.key_length = load16(p + 2);
  h.extras_length = static_cast<uint8_t>(p[4]);
  h.data_type = static_cast<uint8_t>(p[5]);
  h.status_or_vbucket = load16(p + 6);
  h.body_length = load32(p + 8);
  h.opaque = load32(p + 12);
  h.cas = load64(p + 16);
  return h;
}

inline void encode_header(const Header& h, char* p) {
  p[0] = static_cast<char>(h.magic);
  p[1] = static_cast<char>(h.opcode);
  store16(p + 2, h.key_length);
  p[4] = static_cast<char>(h.extras_length);
  p[5] = static_cast<char>(h.data_type);
  store16(p + 6, h.status_or_vbucket);
  store32(p + 8, h.body_length);
  store32(p + 12, h.opaque);
  store64(p + 16, h.cas);
}

// Appends a whole packet (header + extras + key + value) to `out`.
void append_packet(std::string& out, uint8_t magic, uint8_t opcode, uint16_t status, uint32_t opaque, uint64_t cas,
                   std::string_view extras, std::string_view key, std::string_view value, uint8_t data_type = 0);

// The quiet variant's base opcode (SetQ -> Set, GetKQ -> GetK, ...); other opcodes map to themselves.
uint8_t loud_opcode(uint8_t opcode);
bool is_quiet_opcode(uint8_t opcode);

}  // namespace rend::proto::bin
