#include "l2/value_format.h"

#include "common/protocol/binary_format.h"

namespace rend::l2 {

namespace bin = proto::bin;

void encode_item(const ItemMeta& meta, std::string_view data, std::string& out, std::string_view data2) {
  const size_t at = out.size();
  out.resize(at + kItemHeaderSize);
  char* p = out.data() + at;
  p[0] = static_cast<char>(kFormatVersion);
  bin::store32(p + 1, meta.flags);
  bin::store32(p + 5, meta.expiry);
  bin::store64(p + 9, meta.cas);
  bin::store32(p + 17, meta.stored_at);
  out.append(data);
  out.append(data2);
}

bool decode_item(std::string_view stored, ItemMeta& meta, std::string_view& data) {
  if (stored.size() < kItemHeaderSize || static_cast<uint8_t>(stored[0]) != kFormatVersion) return false;
  const char* p = stored.data();
  meta.flags = bin::load32(p + 1);
  meta.expiry = bin::load32(p + 5);
  meta.cas = bin::load64(p + 9);
  meta.stored_at = bin::load32(p + 17);
  data = stored.substr(kItemHeaderSize);
  return true;
}

const std::string& dead_marker() {
  static const std::string marker = [] {
    std::string s;
    ItemMeta m;
    m.expiry = 1;  // 1970: expired for any clock
    encode_item(m, {}, s);
    return s;
  }();
  return marker;
}

bool is_dead_marker(std::string_view stored) { return stored == dead_marker(); }

}  // namespace rend::l2
