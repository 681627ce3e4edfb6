// memcached 1.6's rules for changing an item, without RocksDB: every corner of store/cas/append/
// incr/decr/touch/delete that a client can observe.
#include <gtest/gtest.h>

#include "common/item_rules.h"
#include "common/protocol/binary_format.h"

namespace rend {
namespace {

using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

constexpr uint32_t kNow = 1'800'000'000;

class ItemRules : public ::testing::Test {
 protected:
  Request req(Command c, std::string_view value = {}, Protocol p = Protocol::kText) {
    Request r;
    r.protocol = p;
    r.command = c;
    r.key = "k";
    r.value = value;
    r.create_exptime = 0xffffffffu;
    return r;
  }
  Item item(std::string data, uint64_t cas = 7, uint32_t flags = 3, uint32_t expiry = 0) {
    return Item{ItemMeta{flags, expiry, cas, kNow - 10}, std::move(data)};
  }
  Change apply(const Request& r, const Item* current) {
    return apply_change(r, current, kNow, max_item_size_, next_cas_);
  }

  size_t max_item_size_ = 1024 * 1024;
  uint64_t cas_ = 1000;
  CasFn next_cas_ = [this] { return ++cas_; };
};

TEST_F(ItemRules, SetStoresWithAbsoluteExpiryAndNewCas) {
  Request r = req(Command::kSet, "v");
  r.flags = 42;
  r.exptime = 100;
  const Change c = apply(r, nullptr);
  EXPECT_EQ(c.status, bin::kSuccess);
  ASSERT_EQ(c.write, Change::Write::kPut);
  EXPECT_EQ(c.item.data, "v");
  EXPECT_EQ(c.item.meta.flags, 42u);
  EXPECT_EQ(c.item.meta.expiry, kNow + 100);
  EXPECT_EQ(c.item.meta.cas, 1001u);
  EXPECT_EQ(c.item.meta.stored_at, kNow);
}

TEST_F(ItemRules, AddOnlyWhenAbsent) {
  const Item cur = item("old");
  EXPECT_EQ(apply(req(Command::kAdd, "v"), &cur).status, bin::kKeyExists);  // text: NOT_STORED
  EXPECT_EQ(apply(req(Command::kAdd, "v"), &cur).write, Change::Write::kNone);
  EXPECT_EQ(apply(req(Command::kAdd, "v"), nullptr).write, Change::Write::kPut);
}

TEST_F(ItemRules, ReplaceOnlyWhenPresent) {
  const Item cur = item("old");
  EXPECT_EQ(apply(req(Command::kReplace, "v"), nullptr).status, bin::kKeyNotFound);
  EXPECT_EQ(apply(req(Command::kReplace, "v"), &cur).write, Change::Write::kPut);
}

TEST_F(ItemRules, CasMatchesOnlyTheCurrentUnique) {
  const Item cur = item("old", 7);
  Request r = req(Command::kCas, "new");
  r.cas = 7;
  EXPECT_EQ(apply(r, &cur).status, bin::kSuccess);
  r.cas = 8;
  EXPECT_EQ(apply(r, &cur).status, bin::kKeyExists);       // EXISTS
  EXPECT_EQ(apply(r, nullptr).status, bin::kKeyNotFound);  // NOT_FOUND
  r.cas = 0;                                               // memcached: a cas of 0 never matches an existing item
  EXPECT_EQ(apply(r, &cur).status, bin::kKeyExists);
}

TEST_F(ItemRules, BinarySetAddReplaceWithCasBehaveAsCas) {
  const Item cur = item("old", 7);
  for (Command c : {Command::kSet, Command::kAdd, Command::kReplace}) {
    Request r = req(c, "new", Protocol::kBinary);
    r.cas = 7;
    EXPECT_EQ(apply(r, &cur).status, bin::kSuccess) << static_cast<int>(c);
    r.cas = 9;
    EXPECT_EQ(apply(r, &cur).status, bin::kKeyExists);
    EXPECT_EQ(apply(r, nullptr).status, bin::kKeyNotFound);
  }
}

TEST_F(ItemRules, AppendAndPrependKeepFlagsAndExpiry) {
  const Item cur = item("mid", 7, 9, kNow + 50);
  Request a = req(Command::kAppend, "+");
  a.flags = 1;
  a.exptime = 1;
  Change c = apply(a, &cur);
  EXPECT_EQ(c.item.data, "mid+");
  EXPECT_EQ(c.item.meta.flags, 9u);
  EXPECT_EQ(c.item.meta.expiry, kNow + 50);
  EXPECT_GT(c.item.meta.cas, 7u);
  c = apply(req(Command::kPrepend, "-"), &cur);
  EXPECT_EQ(c.item.data, "-mid");
}

TEST_F(ItemRules, AppendToNothingIsNotStored) {
  EXPECT_EQ(apply(req(Command::kAppend, "x"), nullptr).status, bin::kNotStored);
  EXPECT_EQ(apply(req(Command::kPrepend, "x"), nullptr).status, bin::kNotStored);
}

// memcached (-I 1m, 600 KiB item, 600 KiB append): NOT_STORED, binary status 5 "Not stored.";
// the old item stays as it was.
TEST_F(ItemRules, AppendAndPrependNeverMakeAnItemLargerThanTheLimit) {
  // memcached's limit counts its item header with the CAS (56), the key "k" and its NUL (2), the
  // flags (4, since they are not 0) and the CRLF (2): room for 10 bytes of value.
  max_item_size_ = 10 + 56 + 2 + 4 + 2;
  const Item cur = item("123456", 7);
  for (Command c : {Command::kAppend, Command::kPrepend}) {
    for (Protocol p : {Protocol::kText, Protocol::kBinary}) {
      const Change at_limit = apply(req(c, "abcd", p), &cur);
      EXPECT_EQ(at_limit.status, bin::kSuccess) << "exactly max_item_size is allowed, as for a set";
      EXPECT_EQ(at_limit.item.data.size(), 10u);
      const Change over = apply(req(c, "abcde", p), &cur);
      EXPECT_EQ(over.status, bin::kNotStored) << static_cast<int>(c);
      EXPECT_EQ(over.write, Change::Write::kNone) << "the old item stays";
    }
  }
  // A CAS mismatch is still EXISTS: memcached checks it before it allocates the combined item.
  Request r = req(Command::kAppend, "abcdef", Protocol::kBinary);
  r.cas = 6;
  EXPECT_EQ(apply(r, &cur).status, bin::kKeyExists);
}

TEST_F(ItemRules, BinaryAppendChecksCas) {
  const Item cur = item("a", 7);
  Request r = req(Command::kAppend, "b", Protocol::kBinary);
  r.cas = 6;
  EXPECT_EQ(apply(r, &cur).status, bin::kKeyExists);
  r.cas = 7;
  EXPECT_EQ(apply(r, &cur).status, bin::kSuccess);
}

TEST_F(ItemRules, DeleteReportsWhetherItWasThere) {
  const Item cur = item("a", 7);
  EXPECT_EQ(apply(req(Command::kDelete), nullptr).status, bin::kKeyNotFound);
  EXPECT_EQ(apply(req(Command::kDelete), &cur).write, Change::Write::kDelete);
  Request r = req(Command::kDelete, {}, Protocol::kBinary);
  r.cas = 8;
  EXPECT_EQ(apply(r, &cur).status, bin::kKeyExists);
}

TEST_F(ItemRules, IncrAndDecrFollowMemcached) {
  const Item ten = item("10", 7, 5, kNow + 9);
  Request incr = req(Command::kIncr);
  incr.delta = 5;
  Change c = apply(incr, &ten);
  EXPECT_EQ(c.number, 15u);
  EXPECT_EQ(c.item.data, "15");
  EXPECT_EQ(c.item.meta.flags, 5u);
  EXPECT_EQ(c.item.meta.expiry, kNow + 9);
  EXPECT_GT(c.item.meta.cas, 7u);

  Request decr = req(Command::kDecr);
  decr.delta = 1;
  c = apply(decr, &ten);
  EXPECT_EQ(c.number, 9u);
  EXPECT_EQ(c.item.data, "9 ") << "memcached pads a shorter number in place";
  decr.delta = 100;
  EXPECT_EQ(apply(decr, &ten).number, 0u) << "decr stops at 0";

  const Item max = item("18446744073709551615");
  incr.delta = 2;
  EXPECT_EQ(apply(incr, &max).number, 1u) << "incr wraps at 2^64";
  const Item nine = item("9");
  incr.delta = 1;
  EXPECT_EQ(apply(incr, &nine).item.data, "10") << "a longer number grows the value";
}

TEST_F(ItemRules, IncrOfANonNumberOrEmptyValueFails) {
  Request incr = req(Command::kIncr);
  incr.delta = 1;
  for (const char* v : {"abc", "", "12abc", "-1", "99999999999999999999999"}) {
    const Item cur = item(v);
    EXPECT_EQ(apply(incr, &cur).status, bin::kDeltaBadValue) << v;
  }
  const Item spaced = item("7 ");
  EXPECT_EQ(apply(incr, &spaced).number, 8u) << "trailing space from an earlier decr is fine";
}

TEST_F(ItemRules, IncrOfAMissingKey) {
  Request text = req(Command::kIncr);
  EXPECT_EQ(apply(text, nullptr).status, bin::kKeyNotFound);
  Request bin_create = req(Command::kIncr, {}, Protocol::kBinary);
  bin_create.initial = 40;
  bin_create.create_exptime = 0;
  Change c = apply(bin_create, nullptr);
  EXPECT_EQ(c.status, bin::kSuccess);
  EXPECT_EQ(c.number, 40u);
  EXPECT_EQ(c.item.data, "40");
  EXPECT_EQ(c.item.meta.flags, 0u);
  bin_create.create_exptime = 0xffffffffu;
  EXPECT_EQ(apply(bin_create, nullptr).status, bin::kKeyNotFound);
}

TEST_F(ItemRules, TouchChangesOnlyTheExpiry) {
  const Item cur = item("v", 7, 3, 0);
  Request t = req(Command::kTouch);
  t.exptime = 60;
  const Change c = apply(t, &cur);
  EXPECT_EQ(c.item.meta.expiry, kNow + 60);
  EXPECT_EQ(c.item.meta.cas, 7u) << "touch keeps the CAS";
  EXPECT_EQ(c.item.data, "v");
  EXPECT_EQ(apply(t, nullptr).status, bin::kKeyNotFound);
}

TEST_F(ItemRules, TooLargeSetDropsTheOldValue) {
  Request r = req(Command::kTooLarge);
  r.original = Command::kSet;
  EXPECT_EQ(apply(r, nullptr).write, Change::Write::kDelete);
  EXPECT_EQ(apply(r, nullptr).status, bin::kTooLarge);
  r.original = Command::kAdd;
  EXPECT_EQ(apply(r, nullptr).write, Change::Write::kNone);
}

TEST(CounterText, PadsOnlyWhenShorter) {
  EXPECT_EQ(counter_text(5, 3), "5  ");
  EXPECT_EQ(counter_text(123, 2), "123");
  EXPECT_EQ(counter_text(0, 0), "0");
}

}  // namespace
}  // namespace rend
