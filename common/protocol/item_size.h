// memcached 1.6.18's limit on one item (item_size_ok, its -I): rend refuses what memcached would,
// at the same byte, in every mode, though its own L1 and L2 could hold a little more.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rend::proto {

// memcached's item header on 64-bit builds (48 bytes) and the CAS stored after it (8).
inline constexpr size_t kMemcachedItemHeader = 48 + 8;

// Whether memcached with `-I max_item_size` can hold a value of `value_length` bytes under a key
// of `key_length` bytes: the header, the key and its NUL, the client flags unless they are 0,
// and the value with its CRLF must fit.
inline bool fits_memcached_item(size_t key_length, uint32_t client_flags, size_t value_length, size_t max_item_size) {
  const size_t total =
      kMemcachedItemHeader + key_length + 1 + (client_flags != 0 ? sizeof(uint32_t) : 0) + value_length + 2;
  return value_length <= max_item_size && total <= max_item_size;
}

}  // namespace rend::proto
