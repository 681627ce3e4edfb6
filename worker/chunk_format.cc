#include "worker/chunk_format.h"

#include <algorithm>

#include "common/protocol/binary_format.h"

namespace rend::worker::chunks {

namespace bin = proto::bin;

namespace {

constexpr std::string_view kMagic = "RCH1";

size_t div_ceil(size_t a, size_t b) { return (a + b - 1) / b; }

void append_token(std::string& out, const Token& token) {
  out.append(reinterpret_cast<const char*>(token.data()), token.size());
}

bool same_token(std::string_view stored, const Token& token) {
  return stored.size() >= token.size() && std::equal(token.begin(), token.end(), stored.begin(),
                                                     [](uint8_t t, char c) { return t == static_cast<uint8_t>(c); });
}

}  // namespace

size_t Layout::head_payload(std::string_view key) const {
  const size_t fixed = kItemOverhead + key.size() + kHeadHeaderSize;
  return item_size_ > fixed ? item_size_ - fixed : 0;
}

uint32_t Layout::chunks_for(std::string_view key, size_t length) const {
  const size_t in_head = head_payload(key);
  return length <= in_head ? 0 : static_cast<uint32_t>(div_ceil(length - in_head, tail_payload()));
}

std::string Layout::encode_head(std::string_view key, std::string_view value, uint32_t flags, uint32_t expiry,
                                const Token& token, uint8_t marks) const {
  const size_t payload = head_payload(key);
  std::string out;
  out.reserve(kHeadHeaderSize + payload);
  out.append(kMagic);
  char field[4];
  for (uint32_t v : {static_cast<uint32_t>(value.size()), flags, expiry, chunks_for(key, value.size()),
                     static_cast<uint32_t>(tail_payload()) | (uint32_t{marks} << 24)}) {
    bin::store32(field, v);
    out.append(field, 4);
  }
  append_token(out, token);
  out.append(value.substr(0, payload));
  out.resize(kHeadHeaderSize + payload, '\0');
  return out;
}

std::string Layout::encode_chunk(std::string_view key, std::string_view value, const Token& token,
                                 uint32_t index) const {
  std::string out;
  append_chunk(out, key, value, token, index);
  return out;
}

void Layout::append_chunk(std::string& out, std::string_view key, std::string_view value, const Token& token,
                          uint32_t index) const {
  const size_t payload = tail_payload();
  const size_t offset = head_payload(key) + size_t{index} * payload;
  const size_t end = out.size() + kChunkHeaderSize + payload;
  append_token(out, token);
  if (offset < value.size()) out.append(value.substr(offset, payload));
  out.resize(end, '\0');
}

bool Layout::decode_head(std::string_view stored, Head& head) const {
  if (stored.size() < kHeadHeaderSize || stored.substr(0, 4) != kMagic) return false;
  const char* p = stored.data();
  head.length = bin::load32(p + 4);
  head.flags = bin::load32(p + 8);
  head.expiry = bin::load32(p + 12);
  head.chunks = bin::load32(p + 16);
  head.tail_payload = bin::load32(p + 20) & 0xffffff;
  head.marks = static_cast<uint8_t>(bin::load32(p + 20) >> 24);
  std::copy_n(reinterpret_cast<const uint8_t*>(p + 24), head.token.size(), head.token.begin());
  // A head written under another chunk size (the operator changed l1.chunk_size) still reads
  // back: the head records how its value was cut, and its own size says how much it holds.
  head.head_payload = stored.size() - kHeadHeaderSize;
  // A head we did not write could name any number of chunks: a tail payload below what the
  // smallest item size gives bounds the count (with the caller's bound on the length).
  if (head.tail_payload < kMinItemSize - kItemOverhead - kChunkKeySize - kChunkHeaderSize) return false;
  const size_t in_head = std::min<size_t>(head.length, head.head_payload);
  const size_t rest = head.length - in_head;
  if (head.chunks != div_ceil(rest, head.tail_payload)) return false;
  head.data = stored.substr(kHeadHeaderSize, in_head);
  return true;
}

bool Layout::chunk_payload(const Head& head, uint32_t index, std::string_view stored, std::string_view& payload) const {
  if (index >= head.chunks || stored.size() < kChunkHeaderSize + head.tail_payload || !same_token(stored, head.token)) {
    return false;
  }
  const size_t offset = head.head_payload + size_t{index} * head.tail_payload;
  const size_t take = std::min<size_t>(head.tail_payload, head.length - offset);
  payload = stored.substr(kChunkHeaderSize, take);
  return true;
}

std::string chunk_key(const Token& token, uint32_t index) {
  std::string key;
  append_chunk_key(key, token, index);
  return key;
}

void append_chunk_key(std::string& out, const Token& token, uint32_t index) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.append("~c");
  for (uint8_t b : token) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  for (int shift = 28; shift >= 0; shift -= 4) out.push_back(kHex[(index >> shift) & 15]);
}

}  // namespace rend::worker::chunks
