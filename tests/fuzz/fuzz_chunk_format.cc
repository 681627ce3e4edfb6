// Chunked L1's item format (worker/chunk_format.h): whatever memcached hands back under a key
// (another writer's value, a truncated or forged item) decodes to "not ours" or to a head whose
// parts stay inside the item; and a head and chunks encoded from the input decode to what was
// encoded.
#include <cstring>
#include <string>

#include "tests/fuzz/fuzz_check.h"
#include "worker/chunk_format.h"

using namespace rend::worker::chunks;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Layout layout(1184);
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Head head;
  if (layout.decode_head(input, head)) {
    FUZZ_CHECK(within(head.data, input));
    FUZZ_CHECK(head.data.size() <= head.length);
    std::string_view payload;
    for (uint32_t i = 0; i < std::min<uint32_t>(head.chunks, 4); ++i) {
      if (layout.chunk_payload(head, i, input, payload)) FUZZ_CHECK(within(payload, input));
    }
  }
  // Round trip: key, flags and the value from the input.
  if (size < 9) return 0;
  const size_t key_length = 1 + data[0] % 250;
  if (size < 9 + key_length) return 0;
  uint32_t flags;
  uint32_t expiry;
  std::memcpy(&flags, data + 1, 4);
  std::memcpy(&expiry, data + 5, 4);
  const std::string key(input.substr(9, key_length));
  const std::string_view value = input.substr(9 + key_length);
  Token token{};
  std::memcpy(token.data(), data, std::min<size_t>(size, token.size()));
  Head decoded;
  const std::string encoded = layout.encode_head(key, value, flags, expiry, token);  // decoded views it
  FUZZ_CHECK(layout.decode_head(encoded, decoded));
  FUZZ_CHECK(decoded.length == value.size() && decoded.flags == flags && decoded.expiry == expiry);
  FUZZ_CHECK(decoded.token == token && decoded.chunks == layout.chunks_for(key, value.size()));
  std::string rebuilt(decoded.data);
  for (uint32_t i = 0; i < decoded.chunks; ++i) {
    const std::string chunk = layout.encode_chunk(key, value, token, i);
    std::string_view payload;
    FUZZ_CHECK(layout.chunk_payload(decoded, i, chunk, payload));
    rebuilt.append(payload);
  }
  FUZZ_CHECK(rebuilt == value);
  return 0;
}
