// rend-l2's stored value format (l2/value_format.h), as read back from RocksDB (a damaged or
// foreign value included): decoding never reads past the value, and what decodes encodes back to
// a value that decodes the same.
#include <string>

#include "l2/value_format.h"
#include "tests/fuzz/fuzz_check.h"

using namespace rend;
using namespace rend::l2;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view stored(reinterpret_cast<const char*>(data), size);
  ItemMeta meta;
  std::string_view value;
  if (!decode_item(stored, meta, value)) return 0;
  FUZZ_CHECK(within(value, stored));
  std::string again;
  encode_item(meta, value, again);
  ItemMeta meta2;
  std::string_view value2;
  FUZZ_CHECK(decode_item(again, meta2, value2));
  FUZZ_CHECK(value2 == value && meta2.flags == meta.flags && meta2.expiry == meta.expiry && meta2.cas == meta.cas &&
             meta2.stored_at == meta.stored_at);
  return 0;
}
