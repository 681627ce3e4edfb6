#include "l2/value_format.h"

#include "common/protocol/binary_format.h"

namespace rend::l2 {

namespace bin = proto::bin;

void encode_item(const ItemMeta& meta, std::string_view data, std::string& out, std::string_view data2) {
  // Most items carry no meta marks: they keep the shorter first format.
  const bool marked = meta.marks != 0 || meta.last_access != 0;
  const size_t header = marked ? kMarkedItemHeaderSize : kItemHeaderSize;
  const size_t at = out.size();
  out.resize(at + header);
  char* p = out.data() + at;
  p[0] = static_cast<char>(marked ? kMarkedFormatVersion : kFormatVersion);
  bin::store32(p + 1, meta.flags);
  bin::store32(p + 5, meta.expiry);
  bin::store64(p + 9, meta.cas);
  bin::store32(p + 17, meta.stored_at);
  if (marked) {
    p[21] = static_cast<char>(meta.marks);
    bin::store32(p + 22, meta.last_access);
  }
  out.append(data);
  out.append(data2);
}

bool decode_item(std::string_view stored, ItemMeta& meta, std::string_view& data) {
  if (stored.empty()) return false;
  const auto version = static_cast<uint8_t>(stored[0]);
  const size_t header = version == kFormatVersion         ? kItemHeaderSize
                        : version == kMarkedFormatVersion ? kMarkedItemHeaderSize
                                                          : 0;
  if (header == 0 || stored.size() < header) return false;
  const char* p = stored.data();
  meta.flags = bin::load32(p + 1);
  meta.expiry = bin::load32(p + 5);
  meta.cas = bin::load64(p + 9);
  meta.stored_at = bin::load32(p + 17);
  meta.marks = header == kMarkedItemHeaderSize ? static_cast<uint8_t>(p[21]) : 0;
  meta.last_access = header == kMarkedItemHeaderSize ? bin::load32(p + 22) : 0;
  data = stored.substr(header);
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
