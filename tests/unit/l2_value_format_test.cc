// rend-l2's stored value header and memcached's expiry arithmetic.
#include <gtest/gtest.h>

#include "common/protocol/request.h"
#include "l2/expiry_filter.h"
#include "l2/value_format.h"

namespace rend::l2 {
namespace {

constexpr uint32_t kNow = 1'800'000'000;

TEST(ValueFormat, RoundTripsEveryField) {
  ItemMeta m{0xdeadbeef, kNow + 100, 0x0102030405060708ull, kNow};
  std::string s;
  encode_item(m, "hello", s);
  ASSERT_EQ(s.size(), kItemHeaderSize + 5);
  ItemMeta back;
  std::string_view data;
  ASSERT_TRUE(decode_item(s, back, data));
  EXPECT_EQ(back.flags, m.flags);
  EXPECT_EQ(back.expiry, m.expiry);
  EXPECT_EQ(back.cas, m.cas);
  EXPECT_EQ(back.stored_at, m.stored_at);
  EXPECT_EQ(data, "hello");
}

TEST(ValueFormat, MetaMarksTakeTheLongerFormatOnlyWhenSet) {
  ItemMeta m{7, kNow + 100, 42, kNow};
  m.marks = kMarkStale | kMarkTokenSent;
  m.last_access = kNow + 5;
  std::string s;
  encode_item(m, "v", s);
  ASSERT_EQ(s.size(), kMarkedItemHeaderSize + 1);
  EXPECT_EQ(static_cast<uint8_t>(s[0]), kMarkedFormatVersion);
  ItemMeta back;
  std::string_view data;
  ASSERT_TRUE(decode_item(s, back, data));
  EXPECT_EQ(back.marks, m.marks);
  EXPECT_EQ(back.last_access, m.last_access);
  EXPECT_EQ(back.cas, 42u);
  EXPECT_EQ(data, "v");
  EXPECT_FALSE(decode_item(std::string_view(s).substr(0, kMarkedItemHeaderSize - 1), back, data));
  // An item without marks keeps the first format, which an older rend-l2 reads too.
  std::string plain;
  encode_item(ItemMeta{7, 0, 42, kNow}, "v", plain);
  EXPECT_EQ(plain.size(), kItemHeaderSize + 1);
}

TEST(ValueFormat, LayoutIsBigEndianAfterAVersionByte) {
  ItemMeta m{0x01020304, 0x05060708, 0x090a0b0c0d0e0f10ull, 0x11121314};
  std::string s;
  encode_item(m, "", s);
  const std::string expected("\x01\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14",
                             21);
  EXPECT_EQ(s, expected);
}

TEST(ValueFormat, TwoPartDataIsConcatenated) {
  std::string s;
  encode_item(ItemMeta{}, "ab", s, "cd");
  ItemMeta m;
  std::string_view data;
  ASSERT_TRUE(decode_item(s, m, data));
  EXPECT_EQ(data, "abcd");
}

TEST(ValueFormat, EmptyAndBinaryDataSurvive) {
  const std::string binary("\0\r\n\xff", 4);
  for (const std::string& v : {std::string(), binary}) {
    std::string s;
    encode_item(ItemMeta{}, v, s);
    ItemMeta m;
    std::string_view data;
    ASSERT_TRUE(decode_item(s, m, data));
    EXPECT_EQ(data, v);
  }
}

TEST(ValueFormat, RejectsShortOrForeignRecords) {
  std::string s;
  encode_item(ItemMeta{}, "x", s);
  ItemMeta m;
  std::string_view data;
  EXPECT_FALSE(decode_item(std::string_view(s).substr(0, kItemHeaderSize - 1), m, data));
  s[0] = 2;  // a future format version
  EXPECT_FALSE(decode_item(s, m, data));
  EXPECT_FALSE(decode_item("", m, data));
}

TEST(Expiry, ZeroMeansNever) {
  EXPECT_EQ(absolute_expiry(0, kNow), 0u);
  EXPECT_FALSE(is_expired(0, kNow));
  EXPECT_FALSE(is_expired(0, UINT32_MAX));
}

TEST(Expiry, UpToThirtyDaysIsRelative) {
  EXPECT_EQ(absolute_expiry(1, kNow), kNow + 1);
  EXPECT_EQ(absolute_expiry(100, kNow), kNow + 100);
  EXPECT_EQ(absolute_expiry(kMaxRelativeExptime, kNow), kNow + kMaxRelativeExptime);
}

TEST(Expiry, AboveThirtyDaysIsAbsolute) {
  EXPECT_EQ(absolute_expiry(kMaxRelativeExptime + 1, kNow), kMaxRelativeExptime + 1);
  EXPECT_EQ(absolute_expiry(kNow + 5000, kNow), kNow + 5000);
}

TEST(Expiry, NegativeTextExptimeIsAlreadyExpired) {
  // The text parser maps a negative exptime to kExpireImmediately, an absolute time in 1970.
  const uint32_t at = absolute_expiry(proto::kExpireImmediately, kNow);
  EXPECT_TRUE(is_expired(at, kNow));
}

TEST(Expiry, ExpiresWhenTheClockReachesTheSecond) {
  const uint32_t at = absolute_expiry(2, kNow);
  EXPECT_FALSE(is_expired(at, kNow));
  EXPECT_FALSE(is_expired(at, kNow + 1));
  EXPECT_TRUE(is_expired(at, kNow + 2));
  EXPECT_TRUE(is_expired(kNow - 1, kNow));  // an absolute time in the past
}

TEST(Expiry, RelativeNeverWrapsAround) { EXPECT_EQ(absolute_expiry(kMaxRelativeExptime, UINT32_MAX - 5), UINT32_MAX); }

TEST(DeadMarker, IsAnExpiredEmptyRecord) {
  ItemMeta m;
  std::string_view data;
  ASSERT_TRUE(decode_item(dead_marker(), m, data));
  EXPECT_TRUE(is_expired(m.expiry, 2));
  EXPECT_TRUE(data.empty());
  EXPECT_TRUE(is_dead_marker(dead_marker()));
}

TEST(ExpiryFilter, DecidesOnExpiryAndFlush) {
  FlushState none;
  std::string live, expired, never;
  encode_item(ItemMeta{0, kNow + 10, 5, kNow}, "v", live);
  encode_item(ItemMeta{0, kNow - 1, 5, kNow - 100}, "v", expired);
  encode_item(ItemMeta{0, 0, 5, kNow}, "v", never);
  EXPECT_FALSE(item_is_dead(live, none, kNow));
  EXPECT_TRUE(item_is_dead(live, none, kNow + 10));
  EXPECT_TRUE(item_is_dead(expired, none, kNow));
  EXPECT_FALSE(item_is_dead(never, none, UINT32_MAX));
  FlushState flushed;
  flushed.apply_flush(kNow, 0, 6);
  EXPECT_TRUE(item_is_dead(never, flushed, kNow));
  EXPECT_FALSE(item_is_dead("not ours", flushed, kNow));
}

}  // namespace
}  // namespace rend::l2
