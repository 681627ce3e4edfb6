// Chunked L1's layout: every item has the same memcached footprint, a value cut into a head and
// chunks reassembles byte-exact, and anything that is not exactly what was written (another
// token, a truncated item, a foreign value) is refused rather than read.
#include <gtest/gtest.h>

#include <string>

#include "worker/chunk_format.h"

namespace rend::worker::chunks {
namespace {

Token token_of(uint8_t fill) {
  Token t;
  t.fill(fill);
  return t;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) % 251);
  return s;
}

// memcached's footprint of an item with this key and value (flags 0, CAS on).
size_t footprint(std::string_view key, std::string_view value) { return kItemOverhead + key.size() + value.size(); }

// Reassembles `value` from its encoded items the way a reader does.
std::string roundtrip(const Layout& layout, const std::string& key, const std::string& value) {
  const Token token = token_of(0x5a);
  const std::string head_item = layout.encode_head(key, value, 42, 1'900'000'000, token);
  EXPECT_EQ(footprint(key, head_item), layout.item_size());
  Head head;
  EXPECT_TRUE(layout.decode_head(head_item, head));
  EXPECT_EQ(head.length, value.size());
  EXPECT_EQ(head.flags, 42u);
  EXPECT_EQ(head.expiry, 1'900'000'000u);
  EXPECT_EQ(head.token, token);
  EXPECT_EQ(head.chunks, layout.chunks_for(key, value.size()));
  std::string out(head.data);
  for (uint32_t i = 0; i < head.chunks; ++i) {
    const std::string ck = chunk_key(token, i);
    const std::string item = layout.encode_chunk(key, value, token, i);
    EXPECT_EQ(footprint(ck, item), layout.item_size()) << "chunk " << i;
    std::string_view payload;
    EXPECT_TRUE(layout.chunk_payload(head, i, item, payload));
    out.append(payload);
  }
  return out;
}

TEST(ChunkFormat, EveryItemHasTheConfiguredFootprint) {
  for (size_t item_size : {kMinItemSize, size_t{480}, size_t{1184}, size_t{7104}}) {
    const Layout layout(item_size);
    for (const std::string& key : {std::string("k"), std::string(250, 'x')}) {
      EXPECT_GT(layout.head_payload(key), 0u);
      EXPECT_EQ(footprint(key, layout.encode_head(key, "v", 0, 0, token_of(1))), item_size);
    }
  }
}

TEST(ChunkFormat, ValuesOfEverySizeAroundTheBoundariesRoundTrip) {
  const Layout layout(480);
  const std::string key = "some:key";
  const size_t head = layout.head_payload(key);
  const size_t tail = layout.tail_payload();
  for (size_t n : {size_t{0}, size_t{1}, head - 1, head, head + 1, head + tail - 1, head + tail, head + tail + 1,
                   head + 5 * tail, size_t{100000}, size_t{1} << 20}) {
    const std::string value = pattern(n);
    EXPECT_EQ(roundtrip(layout, key, value), value) << "size " << n;
  }
  EXPECT_EQ(layout.chunks_for(key, head), 0u);
  EXPECT_EQ(layout.chunks_for(key, head + 1), 1u);
  EXPECT_EQ(layout.chunks_for(key, head + tail + 1), 2u);
}

TEST(ChunkFormat, TheHeadKeepsMetaMarks) {
  const Layout layout(480);
  const std::string value(1000, 'x');
  const std::string head_item = layout.encode_head("k", value, 3, 0, token_of(2), 0x07);
  Head head;
  ASSERT_TRUE(layout.decode_head(head_item, head));
  EXPECT_EQ(head.marks, 0x07);
  EXPECT_EQ(head.tail_payload, layout.tail_payload());
  EXPECT_EQ(head.chunks, layout.chunks_for("k", value.size()));
}

TEST(ChunkFormat, AChunkOfAnotherWriteIsRefused) {
  const Layout layout(480);
  const std::string value = pattern(2000);
  Head head;
  const std::string encoded_head = layout.encode_head("k", value, 0, 0, token_of(1));  // head's views point here
  ASSERT_TRUE(layout.decode_head(encoded_head, head));
  const std::string other = layout.encode_chunk("k", value, token_of(2), 0);
  std::string_view payload;
  EXPECT_FALSE(layout.chunk_payload(head, 0, other, payload));
  const std::string mine = layout.encode_chunk("k", value, token_of(1), 0);
  EXPECT_FALSE(layout.chunk_payload(head, 0, mine.substr(0, mine.size() - 1), payload)) << "truncated";
  EXPECT_FALSE(layout.chunk_payload(head, head.chunks, mine, payload)) << "index past the end";
}

TEST(ChunkFormat, ForeignOrDamagedHeadsAreRefused) {
  const Layout layout(480);
  Head head;
  EXPECT_FALSE(layout.decode_head("", head));
  EXPECT_FALSE(layout.decode_head("a plain memcached value that is long enough to have a header", head));
  std::string good = layout.encode_head("k", pattern(3000), 0, 0, token_of(3));
  ASSERT_TRUE(layout.decode_head(good, head));
  EXPECT_FALSE(layout.decode_head(good.substr(0, 39), head));
  std::string bad_count = good;
  bad_count[19] = static_cast<char>(bad_count[19] + 1);  // chunk count no longer matches the length
  EXPECT_FALSE(layout.decode_head(bad_count, head));
  std::string zero_tail = good;
  zero_tail[20] = zero_tail[21] = zero_tail[22] = zero_tail[23] = 0;
  EXPECT_FALSE(layout.decode_head(zero_tail, head));
  // A forged head naming millions of one-byte chunks is refused, not fetched.
  std::string tiny_tail = good;
  tiny_tail[23] = 1;
  tiny_tail[16] = 0, tiny_tail[17] = 0x2d, tiny_tail[18] = 0, tiny_tail[19] = 0;
  EXPECT_FALSE(layout.decode_head(tiny_tail, head));
}

TEST(ChunkFormat, AHeadWrittenWithAnotherChunkSizeStillReads) {
  const Layout small(480);
  const Layout large(1184);
  const std::string value = pattern(5000);
  const Token token = token_of(9);
  Head head;
  // Head and payload are views into what was decoded, which must outlive them.
  const std::string encoded_head = small.encode_head("k", value, 0, 0, token);
  ASSERT_TRUE(large.decode_head(encoded_head, head));
  std::string out(head.data);
  for (uint32_t i = 0; i < head.chunks; ++i) {
    const std::string chunk = small.encode_chunk("k", value, token, i);
    std::string_view payload;
    ASSERT_TRUE(large.chunk_payload(head, i, chunk, payload));
    out.append(payload);
  }
  EXPECT_EQ(out, value);
}

TEST(ChunkFormat, ChunkKeysAreFixedLengthAndDistinct) {
  EXPECT_EQ(chunk_key(token_of(1), 0).size(), kChunkKeySize);
  EXPECT_EQ(chunk_key(token_of(1), 0xffffffff).size(), kChunkKeySize);
  EXPECT_NE(chunk_key(token_of(1), 0), chunk_key(token_of(1), 1));
  EXPECT_NE(chunk_key(token_of(1), 0), chunk_key(token_of(2), 0));
}

}  // namespace
}  // namespace rend::worker::chunks
