// rend-l2's binary replies: Rend's GetE and the memcached shapes a backend client relies on.
#include <gtest/gtest.h>

#include <span>

#include "common/local_reply.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/binary_parser.h"
#include "l2/reply.h"

namespace rend::l2 {
namespace {

using proto::BinaryResponse;
using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

Request binary(Command c, uint8_t opcode, bool quiet = false, bool return_key = false) {
  Request r;
  r.protocol = Protocol::kBinary;
  r.command = c;
  r.opcode = opcode;
  r.quiet = quiet;
  r.return_key = return_key;
  r.opaque = 0xabcd;
  r.key = "the-key";
  return r;
}

BinaryResponse only_packet(const std::string& out) {
  BinaryResponse r;
  size_t consumed = 0;
  EXPECT_EQ(proto::parse_binary_response(std::span<const char>(out.data(), out.size()), 1 << 20, r, consumed),
            proto::ResponseParse::kOk);
  EXPECT_EQ(consumed, out.size()) << "exactly one packet";
  return r;
}

const ItemMeta kMeta{0x11223344, 1'800'000'100, 777, 1'800'000'000};

TEST(GetE, HitCarriesFlagsAndAbsoluteExpiry) {
  for (uint8_t op : {bin::kGetE, bin::kGetEQ}) {
    std::string out;
    append_binary_read(out, binary(Command::kGetE, op, op == bin::kGetEQ), &kMeta, "value");
    const BinaryResponse r = only_packet(out);
    EXPECT_EQ(r.header.opcode, bin::kGetE) << "GetEQ hits are answered as GetE";
    EXPECT_EQ(r.status(), bin::kSuccess);
    EXPECT_EQ(r.header.opaque, 0xabcdu);
    ASSERT_EQ(r.extras.size(), 8u);
    EXPECT_EQ(bin::load32(r.extras.data()), kMeta.flags);
    EXPECT_EQ(bin::load32(r.extras.data() + 4), kMeta.expiry);
    EXPECT_TRUE(r.key.empty());
    EXPECT_EQ(r.value, "value");
  }
}

TEST(GetE, MissIsNotFoundOrSilent) {
  std::string out;
  append_binary_read(out, binary(Command::kGetE, bin::kGetE), nullptr, {});
  const BinaryResponse r = only_packet(out);
  EXPECT_EQ(r.header.opcode, bin::kGetE);
  EXPECT_EQ(r.status(), bin::kKeyNotFound);
  EXPECT_EQ(r.value, "Not found");
  out.clear();
  append_binary_read(out, binary(Command::kGetE, bin::kGetEQ, true), nullptr, {});
  EXPECT_TRUE(out.empty());
}

TEST(BinaryGet, HitHasFlagsCasAndKeyOnlyForK) {
  std::string out;
  append_binary_read(out, binary(Command::kGet, bin::kGetK, false, true), &kMeta, "v");
  BinaryResponse r = only_packet(out);
  EXPECT_EQ(r.header.cas, 777u);
  EXPECT_EQ(r.extras.size(), 4u);
  EXPECT_EQ(r.key, "the-key");
  out.clear();
  append_binary_read(out, binary(Command::kGet, bin::kGet), &kMeta, "v");
  r = only_packet(out);
  EXPECT_TRUE(r.key.empty());
  EXPECT_EQ(r.value, "v");
}

TEST(BinaryGet, MissShapesMatchMemcached) {
  std::string out;
  append_binary_read(out, binary(Command::kGet, bin::kGet), nullptr, {});
  EXPECT_EQ(only_packet(out).value, "Not found");
  out.clear();
  append_binary_read(out, binary(Command::kGet, bin::kGetK, false, true), nullptr, {});
  const BinaryResponse r = only_packet(out);
  EXPECT_EQ(r.status(), bin::kKeyNotFound);
  EXPECT_EQ(r.key, "the-key") << "getk misses return the key";
  EXPECT_TRUE(r.value.empty()) << "and no message";
  out.clear();
  append_binary_read(out, binary(Command::kGet, bin::kGetKQ, true, true), nullptr, {});
  append_binary_read(out, binary(Command::kGat, bin::kGatQ, true), nullptr, {});
  EXPECT_TRUE(out.empty());
}

TEST(BinaryTouch, HitIsFlagsOnly) {
  std::string out;
  append_binary_read(out, binary(Command::kTouch, bin::kTouch), &kMeta, "ignored");
  const BinaryResponse r = only_packet(out);
  EXPECT_EQ(r.extras.size(), 4u);
  EXPECT_TRUE(r.key.empty());
  EXPECT_TRUE(r.value.empty());
  EXPECT_EQ(r.header.cas, 777u);
}

TEST(ChangeReply, QuietSuccessIsSilentButErrorsAreSent) {
  Change ok;
  ok.status = bin::kSuccess;
  ok.item.meta.cas = 5;
  std::string out;
  append_change_reply(out, binary(Command::kSet, bin::kSetQ, true), ok);
  EXPECT_TRUE(out.empty());
  append_change_reply(out, binary(Command::kSet, bin::kSet), ok);
  EXPECT_EQ(only_packet(out).header.cas, 5u);
  out.clear();
  Change exists;
  exists.status = bin::kKeyExists;
  append_change_reply(out, binary(Command::kAdd, bin::kAddQ, true), exists);
  const BinaryResponse r = only_packet(out);
  EXPECT_EQ(r.header.opcode, bin::kAddQ);
  EXPECT_EQ(r.value, "Data exists for key.");
}

TEST(ChangeReply, IncrCarriesTheNumber) {
  Change c;
  c.status = bin::kSuccess;
  c.number = 4000;
  c.item.meta.cas = 9;
  std::string out;
  append_change_reply(out, binary(Command::kIncr, bin::kIncrement), c);
  const BinaryResponse r = only_packet(out);
  ASSERT_EQ(r.value.size(), 8u);
  EXPECT_EQ(bin::load64(r.value.data()), 4000u);
  Request text;
  text.command = Command::kIncr;
  out.clear();
  append_change_reply(out, text, c);
  EXPECT_EQ(out, "4000\r\n");
}

TEST(LocalReply, BinaryVerbosityIsUnknownAsInMemcached1618) {
  std::string out;
  append_local_reply(out, binary(Command::kVerbosity, bin::kVerbosity));
  EXPECT_EQ(only_packet(out).status(), bin::kUnknownCommand);
}

}  // namespace
}  // namespace rend::l2
