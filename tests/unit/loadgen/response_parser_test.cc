// Unit tests for the client-side reply parsers: every prefix of a reply is "need more" with
// nothing consumed, values are split out exactly (binary-safe data included), several replies in
// one buffer parse one after another, and malformed replies are rejected.
#include "common/protocol/response_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/protocol/binary_format.h"

namespace rend::proto {
namespace {

constexpr size_t kMaxValue = 1 << 20;

// Parses a private, exactly-sized copy, so reading past the end is a heap overflow under ASan.
struct Parsed {
  std::vector<char> buffer;
  ResponseParse status = ResponseParse::kBad;
  TextReply reply;
  size_t consumed = 12345;  // a sentinel: need-more must leave it alone
};

Parsed parse_text(std::string_view bytes, size_t max_value = kMaxValue) {
  Parsed p;
  p.buffer.assign(bytes.begin(), bytes.end());
  static const char kEmpty = 0;
  const char* data = p.buffer.empty() ? &kEmpty : p.buffer.data();
  p.status = parse_text_response(std::span<const char>(data, p.buffer.size()), max_value, p.reply, p.consumed);
  return p;
}

struct Case {
  std::string bytes;
  TextReplyKind kind;
};

std::vector<Case> corpus() {
  return {
      {"END\r\n", TextReplyKind::kEnd},
      {"STORED\r\n", TextReplyKind::kStored},
      {"NOT_STORED\r\n", TextReplyKind::kNotStored},
      {"EXISTS\r\n", TextReplyKind::kExists},
      {"NOT_FOUND\r\n", TextReplyKind::kNotFound},
      {"DELETED\r\n", TextReplyKind::kDeleted},
      {"TOUCHED\r\n", TextReplyKind::kTouched},
      {"OK\r\n", TextReplyKind::kOk},
      {"ERROR\r\n", TextReplyKind::kError},
      {"0\r\n", TextReplyKind::kNumber},
      {"18446744073709551615\r\n", TextReplyKind::kNumber},
      {"VERSION 1.6.18\r\n", TextReplyKind::kVersion},
      {"STAT pid 42\r\n", TextReplyKind::kStat},
      {"CLIENT_ERROR bad data chunk\r\n", TextReplyKind::kClientError},
      {"SERVER_ERROR object too large for cache\r\n", TextReplyKind::kServerError},
      {"VALUE k 0 0\r\n\r\n", TextReplyKind::kValue},
      {"VALUE key 4294967295 5\r\nhello\r\n", TextReplyKind::kValue},
      {"VALUE key 1 5 77\r\nhello\r\n", TextReplyKind::kValue},
      {"VALUE bin 0 7\r\n\r\nEND\r\n\r\n", TextReplyKind::kValue},  // data that looks like replies
  };
}

TEST(TextResponse, EveryReplyParsesWhole) {
  for (const Case& c : corpus()) {
    const Parsed p = parse_text(c.bytes);
    ASSERT_EQ(p.status, ResponseParse::kOk) << c.bytes;
    EXPECT_EQ(p.reply.kind, c.kind) << c.bytes;
    EXPECT_EQ(p.consumed, c.bytes.size()) << c.bytes;
  }
}

TEST(TextResponse, EveryPrefixNeedsMoreAndConsumesNothing) {
  for (const Case& c : corpus()) {
    for (size_t n = 0; n < c.bytes.size(); ++n) {
      const Parsed p = parse_text(std::string_view(c.bytes).substr(0, n));
      ASSERT_EQ(p.status, ResponseParse::kNeedMore) << "prefix " << n << " of " << c.bytes;
      ASSERT_EQ(p.consumed, 12345u) << "prefix " << n << " of " << c.bytes;
    }
  }
}

TEST(TextResponse, ValueFieldsAndBinarySafeData) {
  // The data holds "\r\nEND\r\n": only the announced length frames it.
  const std::string data("\r\nEND\0\r\n", 8);
  const std::string bytes = "VALUE bin 7 8 99\r\n" + data + "\r\nEND\r\n";
  Parsed p = parse_text(bytes);
  ASSERT_EQ(p.status, ResponseParse::kOk);
  EXPECT_EQ(p.reply.key, "bin");
  EXPECT_EQ(p.reply.flags, 7u);
  EXPECT_TRUE(p.reply.has_cas);
  EXPECT_EQ(p.reply.cas, 99u);
  EXPECT_EQ(p.reply.data, data);
  EXPECT_EQ(p.consumed, bytes.size() - 5);  // the trailing END is the next reply

  p = parse_text("VALUE k 0 0\r\n\r\n");
  ASSERT_EQ(p.status, ResponseParse::kOk);
  EXPECT_TRUE(p.reply.data.empty());
  EXPECT_FALSE(p.reply.has_cas);
}

TEST(TextResponse, AMultiGetSplitsIntoItsElements) {
  const std::string stream = "VALUE a 1 3\r\nabc\r\nVALUE bb 2 0\r\n\r\nVALUE c 3 4\r\nwxyz\r\nEND\r\n";
  std::vector<std::string> keys, data;
  std::vector<uint32_t> flags;
  size_t at = 0;
  while (true) {
    TextReply r;
    size_t consumed = 0;
    ASSERT_EQ(
        parse_text_response(std::span<const char>(stream.data() + at, stream.size() - at), kMaxValue, r, consumed),
        ResponseParse::kOk);
    at += consumed;
    if (r.kind == TextReplyKind::kEnd) break;
    ASSERT_EQ(r.kind, TextReplyKind::kValue);
    keys.emplace_back(r.key);
    data.emplace_back(r.data);
    flags.push_back(r.flags);
  }
  EXPECT_EQ(at, stream.size());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "bb", "c"}));
  EXPECT_EQ(data, (std::vector<std::string>{"abc", "", "wxyz"}));
  EXPECT_EQ(flags, (std::vector<uint32_t>{1, 2, 3}));
}

TEST(TextResponse, NumbersAndMessages) {
  Parsed p = parse_text("12345\r\n");
  ASSERT_EQ(p.status, ResponseParse::kOk);
  EXPECT_EQ(p.reply.number, 12345u);
  p = parse_text("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
  ASSERT_EQ(p.status, ResponseParse::kOk);
  EXPECT_EQ(p.reply.message, "cannot increment or decrement non-numeric value");
  p = parse_text("SERVER_ERROR\r\n");
  ASSERT_EQ(p.status, ResponseParse::kOk);
  EXPECT_EQ(p.reply.kind, TextReplyKind::kServerError);
  EXPECT_TRUE(p.reply.message.empty());
  p = parse_text("VERSION 1.6.18-rend-0.1.0\r\n");
  EXPECT_EQ(p.reply.message, "1.6.18-rend-0.1.0");
}

TEST(TextResponse, MalformedRepliesAreBad) {
  const std::vector<std::string> bad = {
      "HELLO\r\n",                      // not a reply
      "hello\r\n",                      // first byte can start nothing
      "END\n",                          // LF without CR
      "\r\n",                           // empty line
      "STORED \r\n",                    // trailing space
      "ENDX\r\n",                       //
      "VALUE\r\n",                      //
      "VALUE k 0\r\n",                  // no length
      "VALUE k x 1\r\na\r\n",           // flags not a number
      "VALUE k 0 -1\r\n",               //
      "VALUE k 0 1 2 3\r\na\r\n",       // too many fields
      "VALUE k  0 1\r\na\r\n",          // empty field
      "VALUE k 4294967296 1\r\na\r\n",  // flags beyond 32 bits
      "VALUE k 0 3\r\nabcXY",           // data not followed by CRLF
      "VALUE k 0 3\r\nabc\n\n",         //
      "18446744073709551616\r\n",       // beyond 64 bits
      "12a\r\n",                        //
      "VERSIONX\r\n",                   //
  };
  for (const auto& b : bad) {
    EXPECT_EQ(parse_text(b).status, ResponseParse::kBad) << b;
  }
  // A key longer than memcached allows.
  EXPECT_EQ(parse_text("VALUE " + std::string(251, 'k') + " 0 1\r\na\r\n").status, ResponseParse::kBad);
  EXPECT_EQ(parse_text("VALUE " + std::string(250, 'k') + " 0 1\r\na\r\n").status, ResponseParse::kOk);
}

TEST(TextResponse, LimitsBoundWhatIsBuffered) {
  // A value larger than max_value is rejected from its header, before any data arrives.
  EXPECT_EQ(parse_text("VALUE k 0 101\r\n", 100).status, ResponseParse::kBad);
  EXPECT_EQ(parse_text("VALUE k 0 100\r\n", 100).status, ResponseParse::kNeedMore);
  // A line that never ends.
  EXPECT_EQ(parse_text("SERVER_ERROR " + std::string(kMaxReplyLine, 'x')).status, ResponseParse::kBad);
  EXPECT_EQ(parse_text("SERVER_ERROR " + std::string(100, 'x')).status, ResponseParse::kNeedMore);
}

std::string binary_reply(uint8_t opcode, uint16_t status, uint32_t opaque, std::string_view extras,
                         std::string_view key, std::string_view value) {
  std::string out;
  bin::append_packet(out, bin::kResponseMagic, opcode, status, opaque, 0x1122334455667788ULL, extras, key, value);
  return out;
}

TEST(BinaryResponse, PrefixesNeedMoreAndFieldsSplit) {
  const std::string flags("\x00\x00\x01\x02", 4);
  const std::string bytes = binary_reply(bin::kGetK, 0, 77, flags, "thekey", std::string("va\r\nlue", 7));
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<char> copy(bytes.begin(), bytes.begin() + static_cast<long>(n));
    BinaryResponse r;
    size_t consumed = 999;
    ASSERT_EQ(parse_binary_response(std::span<const char>(copy.data(), copy.size()), kMaxValue, r, consumed),
              ResponseParse::kNeedMore)
        << n;
    ASSERT_EQ(consumed, 999u);
  }
  // Two packets back to back: the first is split exactly.
  const std::string two = bytes + binary_reply(bin::kNoop, 0, 78, "", "", "");
  BinaryResponse r;
  size_t consumed = 0;
  ASSERT_EQ(parse_binary_response(std::span<const char>(two.data(), two.size()), kMaxValue, r, consumed),
            ResponseParse::kOk);
  EXPECT_EQ(consumed, bytes.size());
  EXPECT_EQ(r.header.opcode, bin::kGetK);
  EXPECT_EQ(r.header.opaque, 77u);
  EXPECT_EQ(r.header.cas, 0x1122334455667788ULL);
  EXPECT_EQ(r.status(), 0u);
  EXPECT_EQ(bin::load32(r.extras.data()), 0x0102u);
  EXPECT_EQ(r.key, "thekey");
  EXPECT_EQ(r.value, std::string_view("va\r\nlue", 7));
  ASSERT_EQ(parse_binary_response(std::span<const char>(two.data() + consumed, two.size() - consumed), kMaxValue, r,
                                  consumed),
            ResponseParse::kOk);
  EXPECT_EQ(r.header.opcode, bin::kNoop);
  EXPECT_EQ(r.header.opaque, 78u);
}

TEST(BinaryResponse, MalformedPacketsAreBad) {
  std::string wrong_magic = binary_reply(bin::kGet, 0, 1, "", "", "v");
  wrong_magic[0] = static_cast<char>(bin::kRequestMagic);
  BinaryResponse r;
  size_t consumed = 0;
  EXPECT_EQ(
      parse_binary_response(std::span<const char>(wrong_magic.data(), wrong_magic.size()), kMaxValue, r, consumed),
      ResponseParse::kBad);
  // extras + key longer than the body.
  std::string inconsistent = binary_reply(bin::kGet, 0, 1, "", "", "");
  inconsistent[3] = 5;  // key length 5, body 0
  EXPECT_EQ(
      parse_binary_response(std::span<const char>(inconsistent.data(), inconsistent.size()), kMaxValue, r, consumed),
      ResponseParse::kBad);
  // A body over the bound is refused from the header alone.
  const std::string big = binary_reply(bin::kGet, 0, 1, "", "", std::string(101, 'x')).substr(0, bin::kHeaderSize);
  EXPECT_EQ(parse_binary_response(std::span<const char>(big.data(), big.size()), 100, r, consumed),
            ResponseParse::kBad);
}

}  // namespace
}  // namespace rend::proto
