// How chunked L1 (l1.chunked) lays a value out in memcached: pure layout, no I/O.
//
// Every L1 item rend writes in chunked mode has the same footprint in memcached, `item_size`
// bytes (one slab class), whatever the value's size. That is the point of chunking: when the
// sizes a service stores shift, memcached's slab allocator cannot strand memory in the classes
// of the old sizes, because there is only one class.
//
// A value is a head item under the client's own key plus, when it does not fit there, tail
// chunks:
//
//   head   key: the client's key
//          value: [magic "RCH1"][length u32][flags u32][expiry u32][chunks u32][tail payload u32]
//                 [token 16 bytes][the first bytes of the value][zero padding]
//   chunk  key: "~c" + 32 hex digits of the token + 8 hex digits of the chunk's index
//          value: [token 16 bytes][the next tail-payload bytes of the value][zero padding]
//
// The tail payload field's top byte holds the item's meta marks (common/item_rules.h: stale, win
// token sent, hit before, base64 key), which l1only's meta commands keep there (a payload is far
// below 2^24 bytes). Integers are big-endian. The token is random per write and names the chunks, so two writes of
// one key never touch each other's chunks: a reader follows the head it read to exactly the
// chunks written with it, or finds them gone (a miss), never a mix of two values. Memcached's
// own flags and exptime of every item are the value's expiry and 0; the client's flags live in
// the head.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rend::worker::chunks {

using Token = std::array<uint8_t, 16>;

// memcached 1.6's per-item overhead for an item with a CAS and client flags 0: the 48-byte item
// header, the 8-byte CAS, the key's terminating NUL and the value's CRLF (ITEM_ntotal).
inline constexpr size_t kItemOverhead = 48 + 8 + 1 + 2;
inline constexpr size_t kHeadHeaderSize = 40;
inline constexpr size_t kChunkHeaderSize = 16;
inline constexpr size_t kChunkKeySize = 2 + 32 + 8;
// The smallest item size that leaves room for a head with a 250-byte key and some data.
inline constexpr size_t kMinItemSize = 384;

struct Head {
  uint32_t length = 0;        // the whole value
  uint32_t flags = 0;         // the client's flags
  uint32_t expiry = 0;        // absolute unix seconds, 0 = never
  uint32_t chunks = 0;        // tail chunks after the head
  uint32_t tail_payload = 0;  // value bytes per tail chunk
  uint8_t marks = 0;          // ItemMark bits (meta commands)
  Token token{};
  std::string_view data;    // decode: the value bytes held in the head itself
  size_t head_payload = 0;  // decode: value bytes a head under this key holds
};

class Layout {
 public:
  explicit Layout(size_t item_size) : item_size_(item_size) {}
  size_t item_size() const { return item_size_; }
  // Value bytes a head under `key` holds / a tail chunk holds.
  size_t head_payload(std::string_view key) const;
  size_t tail_payload() const { return item_size_ - kItemOverhead - kChunkKeySize - kChunkHeaderSize; }
  uint32_t chunks_for(std::string_view key, size_t length) const;

  // The head item's value for `value` (its first head_payload(key) bytes), padded to size.
  std::string encode_head(std::string_view key, std::string_view value, uint32_t flags, uint32_t expiry,
                          const Token& token, uint8_t marks = 0) const;
  // Tail chunk `index` (0-based) of `value` under `key`, padded to size.
  std::string encode_chunk(std::string_view key, std::string_view value, const Token& token, uint32_t index) const;
  // The same, appended to `out` (a request being composed in place).
  void append_chunk(std::string& out, std::string_view key, std::string_view value, const Token& token,
                    uint32_t index) const;

  // False when `stored` is not a head this layout wrote (another writer's format, a plain value,
  // a truncated item): the caller treats the key as holding no value.
  bool decode_head(std::string_view stored, Head& head) const;
  // The payload of tail chunk `index` of `head`, or false when the chunk is not the one the head
  // was written with (wrong token or size).
  bool chunk_payload(const Head& head, uint32_t index, std::string_view stored, std::string_view& payload) const;

 private:
  size_t item_size_;
};

std::string chunk_key(const Token& token, uint32_t index);
void append_chunk_key(std::string& out, const Token& token, uint32_t index);

}  // namespace rend::worker::chunks
