// Unit tests for the binary protocol parsers: framing of every opcode (every prefix is "need more"),
// field extraction, memcached 1.6's per-opcode validation, and backend response parsing.
//
// Packets are built here byte by byte rather than with bin::append_packet, so a bug in the shared
// encoder cannot hide a matching bug in the decoder.
#include "common/protocol/binary_parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rend::proto {
namespace {

constexpr size_t kMaxItem = 1024 * 1024;

void put(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::string u32(uint32_t v) {
  std::string s;
  put(s, v, 4);
  return s;
}

std::string u64(uint64_t v) {
  std::string s;
  put(s, v, 8);
  return s;
}

struct Header {
  uint8_t magic = 0x80;
  uint8_t opcode = 0;
  uint16_t key_length = 0;
  uint8_t extras_length = 0;
  uint16_t status = 0;
  uint32_t body_length = 0;
  uint32_t opaque = 0;
  uint64_t cas = 0;
};

std::string header(const Header& h) {
  std::string s;
  put(s, h.magic, 1);
  put(s, h.opcode, 1);
  put(s, h.key_length, 2);
  put(s, h.extras_length, 1);
  put(s, 0, 1);  // data type
  put(s, h.status, 2);
  put(s, h.body_length, 4);
  put(s, h.opaque, 4);
  put(s, h.cas, 8);
  return s;
}

std::string packet(uint8_t opcode, std::string_view extras, std::string_view key, std::string_view value,
                   uint32_t opaque = 0, uint64_t cas = 0, uint8_t magic = 0x80, uint16_t status = 0) {
  Header h;
  h.magic = magic;
  h.opcode = opcode;
  h.key_length = static_cast<uint16_t>(key.size());
  h.extras_length = static_cast<uint8_t>(extras.size());
  h.status = status;
  h.body_length = static_cast<uint32_t>(extras.size() + key.size() + value.size());
  h.opaque = opaque;
  h.cas = cas;
  std::string s = header(h);
  s.append(extras);
  s.append(key);
  s.append(value);
  return s;
}

// Parses an exactly-sized private copy (see text_parser_test.cc for why).
struct Parsed {
  std::vector<char> buffer;
  ParseResult result;
  const Request& req() const { return result.request; }
};

Parsed parse(std::string_view bytes, size_t max_item_size = kMaxItem) {
  Parsed p;
  p.buffer.assign(bytes.begin(), bytes.end());
  static const char kEmpty = 0;
  const char* data = p.buffer.empty() ? &kEmpty : p.buffer.data();
  p.result = parse_binary_request(std::span<const char>(data, p.buffer.size()), max_item_size);
  return p;
}

struct Case {
  std::string name;
  std::string bytes;
  Command command;
  bool quiet;
  bool return_key;
};

const std::string kStorageExtras = u32(0xdeadbeef) + u32(100);
const std::string kArithExtras = u64(5) + u64(10) + u32(0);

std::vector<Case> valid_corpus() {
  return {
      {"get", packet(0x00, "", "k", ""), Command::kGet, false, false},
      {"getq", packet(0x09, "", "k", ""), Command::kGet, true, false},
      {"getk", packet(0x0c, "", "k", ""), Command::kGet, false, true},
      {"getkq", packet(0x0d, "", "k", ""), Command::kGet, true, true},
      {"gete", packet(0x40, "", "k", ""), Command::kGetE, false, false},
      {"geteq", packet(0x41, "", "k", ""), Command::kGetE, true, false},
      {"set", packet(0x01, kStorageExtras, "k", "value"), Command::kSet, false, false},
      {"set empty", packet(0x01, kStorageExtras, "k", ""), Command::kSet, false, false},
      {"setq", packet(0x11, kStorageExtras, "k", "value"), Command::kSet, true, false},
      {"add", packet(0x02, kStorageExtras, "k", "v"), Command::kAdd, false, false},
      {"addq", packet(0x12, kStorageExtras, "k", "v"), Command::kAdd, true, false},
      {"replace", packet(0x03, kStorageExtras, "k", "v"), Command::kReplace, false, false},
      {"replaceq", packet(0x13, kStorageExtras, "k", "v"), Command::kReplace, true, false},
      {"append", packet(0x0e, "", "k", "v"), Command::kAppend, false, false},
      {"appendq", packet(0x19, "", "k", "v"), Command::kAppend, true, false},
      {"prepend", packet(0x0f, "", "k", "v"), Command::kPrepend, false, false},
      {"prependq", packet(0x1a, "", "k", "v"), Command::kPrepend, true, false},
      {"delete", packet(0x04, "", "k", ""), Command::kDelete, false, false},
      {"deleteq", packet(0x14, "", "k", ""), Command::kDelete, true, false},
      {"incr", packet(0x05, kArithExtras, "k", ""), Command::kIncr, false, false},
      {"incrq", packet(0x15, kArithExtras, "k", ""), Command::kIncr, true, false},
      {"decr", packet(0x06, kArithExtras, "k", ""), Command::kDecr, false, false},
      {"decrq", packet(0x16, kArithExtras, "k", ""), Command::kDecr, true, false},
      {"quit", packet(0x07, "", "", ""), Command::kQuit, false, false},
      {"quitq", packet(0x17, "", "", ""), Command::kQuit, true, false},
      {"flush", packet(0x08, "", "", ""), Command::kFlushAll, false, false},
      {"flush delay", packet(0x08, u32(30), "", ""), Command::kFlushAll, false, false},
      {"flushq", packet(0x18, "", "", ""), Command::kFlushAll, true, false},
      {"flushq delay", packet(0x18, u32(30), "", ""), Command::kFlushAll, true, false},
      {"noop", packet(0x0a, "", "", ""), Command::kNoop, false, false},
      {"version", packet(0x0b, "", "", ""), Command::kVersion, false, false},
      {"stat", packet(0x10, "", "", ""), Command::kStats, false, false},
      {"stat slabs", packet(0x10, "", "slabs", ""), Command::kStats, false, false},
      {"touch", packet(0x1c, u32(10), "k", ""), Command::kTouch, false, false},
      {"gat", packet(0x1d, u32(10), "k", ""), Command::kGat, false, false},
      {"gatq", packet(0x1e, u32(10), "k", ""), Command::kGat, true, false},
      {"gatk", packet(0x23, u32(10), "k", ""), Command::kGat, false, true},
      {"gatkq", packet(0x24, u32(10), "k", ""), Command::kGat, true, true},
  };
}

TEST(BinaryParserFraming, EveryStrictPrefixNeedsMoreAndTheWholeParses) {
  for (const Case& c : valid_corpus()) {
    for (size_t cut = 0; cut < c.bytes.size(); ++cut) {
      const Parsed p = parse(std::string_view(c.bytes).substr(0, cut));
      ASSERT_EQ(p.result.status, ParseStatus::kNeedMore) << c.name << " cut at " << cut;
      ASSERT_EQ(p.result.consumed, 0u) << c.name << " cut at " << cut;
    }
    const Parsed p = parse(c.bytes);
    ASSERT_EQ(p.result.status, ParseStatus::kRequest) << c.name;
    EXPECT_EQ(p.result.consumed, c.bytes.size()) << c.name;
    EXPECT_EQ(p.result.swallow, 0u) << c.name;
    EXPECT_EQ(p.req().protocol, Protocol::kBinary) << c.name;
    EXPECT_EQ(p.req().command, c.command) << c.name;
    EXPECT_EQ(p.req().quiet, c.quiet) << c.name;
    EXPECT_EQ(p.req().return_key, c.return_key) << c.name;
    EXPECT_EQ(p.req().opcode, static_cast<uint8_t>(c.bytes[1])) << c.name;
  }
}

TEST(BinaryParserFraming, TwoConcatenatedRequestsParseOnlyTheFirst) {
  const std::vector<Case> corpus = valid_corpus();
  for (const Case& a : corpus) {
    for (const Case& b : corpus) {
      const Parsed p = parse(a.bytes + b.bytes);
      ASSERT_EQ(p.result.status, ParseStatus::kRequest) << a.name << "+" << b.name;
      ASSERT_EQ(p.result.consumed, a.bytes.size()) << a.name << "+" << b.name;
      ASSERT_EQ(p.req().command, a.command) << a.name << "+" << b.name;
    }
  }
}

TEST(BinaryParserFields, Storage) {
  const std::string_view value("va\0\r\nlue", 8);  // NUL and CRLF inside: framing is by length
  const Parsed p = parse(packet(0x11, kStorageExtras, "key", value, 0xcafebabe, 0x0102030405060708));
  ASSERT_EQ(p.req().command, Command::kSet);
  EXPECT_EQ(p.req().key, "key");
  EXPECT_EQ(p.req().value, value);
  EXPECT_EQ(p.req().flags, 0xdeadbeefu);
  EXPECT_EQ(p.req().exptime, 100u);
  EXPECT_EQ(p.req().opaque, 0xcafebabeu);
  EXPECT_EQ(p.req().cas, 0x0102030405060708u);
  EXPECT_TRUE(p.req().quiet);
  EXPECT_EQ(p.req().opcode, 0x11);

  const Parsed a = parse(packet(0x0e, "", "key", "tail"));
  EXPECT_EQ(a.req().key, "key");
  EXPECT_EQ(a.req().value, "tail");
}

TEST(BinaryParserFields, GetKQReturnsKeyQuietly) {
  const Parsed p = parse(packet(0x0d, "", "thekey", "", 0x01020304, 42));
  ASSERT_EQ(p.req().command, Command::kGet);
  EXPECT_TRUE(p.req().quiet);
  EXPECT_TRUE(p.req().return_key);
  EXPECT_EQ(p.req().key, "thekey");
  EXPECT_EQ(p.req().opaque, 0x01020304u);
  EXPECT_EQ(p.req().cas, 42u);
  EXPECT_EQ(p.req().opcode, 0x0d);
}

TEST(BinaryParserFields, ArithTouchFlushStatQuit) {
  Parsed p = parse(packet(0x05, u64(UINT64_MAX) + u64(0x1122334455667788) + u32(0xffffffff), "n", ""));
  ASSERT_EQ(p.req().command, Command::kIncr);
  EXPECT_EQ(p.req().key, "n");
  EXPECT_EQ(p.req().delta, UINT64_MAX);
  EXPECT_EQ(p.req().initial, 0x1122334455667788u);
  EXPECT_EQ(p.req().create_exptime, 0xffffffffu);

  p = parse(packet(0x1c, u32(12345), "k", ""));
  EXPECT_EQ(p.req().exptime, 12345u);
  EXPECT_EQ(p.req().key, "k");

  p = parse(packet(0x24, u32(7), "k", ""));
  EXPECT_EQ(p.req().exptime, 7u);

  p = parse(packet(0x08, "", "", ""));
  EXPECT_FALSE(p.req().has_exptime);
  p = parse(packet(0x08, u32(30), "", ""));
  EXPECT_TRUE(p.req().has_exptime);
  EXPECT_EQ(p.req().exptime, 30u);

  p = parse(packet(0x10, "", "", ""));
  EXPECT_EQ(p.req().stats_group, "");
  p = parse(packet(0x10, "", "items", ""));
  EXPECT_EQ(p.req().stats_group, "items");
  EXPECT_EQ(p.req().key, "");

  p = parse(packet(0x07, "", "", ""));
  EXPECT_TRUE(p.req().close_after);
  p = parse(packet(0x17, "", "", ""));
  EXPECT_TRUE(p.req().close_after);
  EXPECT_TRUE(p.req().quiet);
  p = parse(packet(0x0a, "", "", ""));
  EXPECT_FALSE(p.req().close_after);
}

TEST(BinaryParserErrors, BadMagicCloses) {
  for (const std::string& bytes :
       {std::string("\x81"), std::string("g"), std::string("get a\r\n"), packet(0x00, "", "k", "", 0, 0, 0x81)}) {
    const Parsed p = parse(bytes);
    EXPECT_EQ(p.result.status, ParseStatus::kClose) << testing::PrintToString(bytes);
  }
}

void expect_invalid_arguments(const std::string& bytes, uint32_t opaque, const char* what) {
  const Parsed p = parse(bytes);
  ASSERT_EQ(p.result.status, ParseStatus::kRequest) << what;
  EXPECT_EQ(p.req().command, Command::kError) << what;
  EXPECT_EQ(p.req().error_status, bin::kInvalidArguments) << what;
  EXPECT_TRUE(p.req().close_after) << what;
  EXPECT_EQ(p.req().opaque, opaque) << what;
  EXPECT_EQ(p.req().opcode, static_cast<uint8_t>(bytes[1])) << what;
  EXPECT_GE(p.result.consumed, bin::kHeaderSize) << what;
}

TEST(BinaryParserErrors, MalformedHeadersAreInvalidArguments) {
  expect_invalid_arguments(packet(0x00, u32(0), "k", "", 0x11223344), 0x11223344, "get with extras");
  expect_invalid_arguments(packet(0x00, "", std::string(251, 'k'), "", 0x55), 0x55, "get key 251");
  expect_invalid_arguments(packet(0x01, "", "k", "v", 0x66), 0x66, "set without extras");
  expect_invalid_arguments(packet(0x01, kStorageExtras, std::string(251, 'k'), "v", 7), 7, "set key 251");
  expect_invalid_arguments(packet(0x00, "", "", "", 8), 8, "get without key");
  expect_invalid_arguments(packet(0x05, u64(1), "k", "", 9), 9, "incr short extras");
  expect_invalid_arguments(packet(0x0a, "", "k", "", 10), 10, "noop with key");
  expect_invalid_arguments(packet(0x1c, "", "k", "", 11), 11, "touch without extras");
  expect_invalid_arguments(packet(0x08, u64(1), "", "", 12), 12, "flush with 8 extras");
}

TEST(BinaryParserErrors, UnknownOpcodeIsSwallowed) {
  const std::string bytes = packet(0x55, "", "", "0123456789", 0xabcdef01);
  for (const size_t available : {bin::kHeaderSize, bytes.size()}) {
    const Parsed p = parse(std::string_view(bytes).substr(0, available));
    ASSERT_EQ(p.result.status, ParseStatus::kRequest);
    EXPECT_EQ(p.req().command, Command::kUnknown);
    EXPECT_EQ(p.result.consumed, 24u);
    EXPECT_EQ(p.result.swallow, 10u);
    EXPECT_EQ(p.req().opaque, 0xabcdef01u);
    EXPECT_EQ(p.req().opcode, 0x55);
  }
}

TEST(BinaryParserLimits, HugeSetIsTooLargeOnceItsKeyIsIn) {
  Header h;
  h.opcode = 0x01;
  h.key_length = 3;
  h.extras_length = 8;
  h.body_length = 0xffffffff;
  h.opaque = 77;
  const std::string head = header(h) + kStorageExtras + "big";
  for (size_t cut = 0; cut < head.size(); ++cut) {
    const Parsed p = parse(std::string_view(head).substr(0, cut));
    ASSERT_EQ(p.result.status, ParseStatus::kNeedMore) << "cut at " << cut;
    ASSERT_EQ(p.result.consumed, 0u);
  }
  const Parsed p = parse(head + "some of the value");
  ASSERT_EQ(p.result.status, ParseStatus::kRequest);
  EXPECT_EQ(p.req().command, Command::kTooLarge);
  EXPECT_EQ(p.req().original, Command::kSet);
  EXPECT_EQ(p.req().error_status, bin::kTooLarge);
  EXPECT_EQ(p.req().key, "big");
  EXPECT_EQ(p.req().opaque, 77u);
  EXPECT_EQ(p.result.consumed, head.size());
  // memcached's int value length is negative from 2^31 on: it swallows nothing (observed).
  EXPECT_EQ(p.result.swallow, 0u);
}

TEST(BinaryParserLimits, ValueAtAndOverMaxItemSize) {
  // memcached's item: 56 bytes of header and CAS, the key and its NUL, the flags when not 0 (the
  // set's are), the value and CRLF.
  constexpr size_t kLimit = 16 + 56 + 2 + 4 + 2;
  Parsed p = parse(packet(0x01, kStorageExtras, "k", std::string(16, 'v')), kLimit);
  EXPECT_EQ(p.req().command, Command::kSet);
  p = parse(packet(0x01, kStorageExtras, "k", std::string(17, 'v')), kLimit);
  EXPECT_EQ(p.req().command, Command::kTooLarge);
  p = parse(packet(0x0e, "", "k", std::string(20, 'v')), kLimit);
  EXPECT_EQ(p.req().command, Command::kAppend) << "an append has no flags";
  p = parse(packet(0x0e, "", "k", std::string(21, 'v')), kLimit);
  EXPECT_EQ(p.req().command, Command::kTooLarge);
  EXPECT_EQ(p.req().original, Command::kAppend);
  EXPECT_EQ(p.result.consumed, 24u + 1);
  EXPECT_EQ(p.result.swallow, 21u);
}

// ---- responses ----

struct ParsedResponse {
  std::vector<char> buffer;
  ResponseParse status;
  BinaryResponse response;
  size_t consumed = 0;
};

ParsedResponse parse_response(std::string_view bytes, size_t max_body = kMaxItem + 1024) {
  ParsedResponse p;
  p.buffer.assign(bytes.begin(), bytes.end());
  static const char kEmpty = 0;
  const char* data = p.buffer.empty() ? &kEmpty : p.buffer.data();
  p.status = parse_binary_response(std::span<const char>(data, p.buffer.size()), max_body, p.response, p.consumed);
  return p;
}

TEST(BinaryResponse, SplitsExtrasKeyValue) {
  const std::string resp = packet(0x0c, u32(0xfeedface), "key", "the value", 99, 1234, 0x81, 0);
  for (size_t cut = 0; cut < resp.size(); ++cut) {
    const ParsedResponse p = parse_response(std::string_view(resp).substr(0, cut));
    ASSERT_EQ(p.status, ResponseParse::kNeedMore) << "cut at " << cut;
  }
  const ParsedResponse p = parse_response(resp + packet(0x0a, "", "", "", 0, 0, 0x81));
  ASSERT_EQ(p.status, ResponseParse::kOk);
  EXPECT_EQ(p.consumed, resp.size());
  EXPECT_EQ(p.response.extras, u32(0xfeedface));
  EXPECT_EQ(p.response.key, "key");
  EXPECT_EQ(p.response.value, "the value");
  EXPECT_EQ(p.response.header.opcode, 0x0c);
  EXPECT_EQ(p.response.header.opaque, 99u);
  EXPECT_EQ(p.response.header.cas, 1234u);
  EXPECT_EQ(p.response.status(), 0);
}

TEST(BinaryResponse, ErrorStatusAndEmptyBody) {
  const std::string resp = packet(0x00, "", "", "Not found", 5, 0, 0x81, bin::kKeyNotFound);
  ParsedResponse p = parse_response(resp);
  ASSERT_EQ(p.status, ResponseParse::kOk);
  EXPECT_EQ(p.response.status(), bin::kKeyNotFound);
  EXPECT_EQ(p.response.value, "Not found");
  EXPECT_EQ(p.response.extras, "");
  EXPECT_EQ(p.response.key, "");

  p = parse_response(packet(0x0a, "", "", "", 0, 0, 0x81));
  ASSERT_EQ(p.status, ResponseParse::kOk);
  EXPECT_EQ(p.consumed, 24u);
}

TEST(BinaryResponse, BadInput) {
  // A request magic is not a response.
  EXPECT_EQ(parse_response(packet(0x00, "", "", "")).status, ResponseParse::kBad);
  // A body bigger than we are willing to buffer is refused from the header alone.
  Header h;
  h.magic = 0x81;
  h.body_length = 1001;
  EXPECT_EQ(parse_response(header(h), 1000).status, ResponseParse::kBad);
  h.body_length = 1000;
  EXPECT_EQ(parse_response(header(h), 1000).status, ResponseParse::kNeedMore);
  // Extras and key longer than the body.
  h.body_length = 4;
  h.extras_length = 4;
  h.key_length = 1;
  EXPECT_EQ(parse_response(header(h) + "abcd", 1000).status, ResponseParse::kBad);
}

}  // namespace
}  // namespace rend::proto
