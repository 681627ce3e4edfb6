// Unit tests for request composition: exact wire bytes for representative requests, and
// compose -> parse round trips over many requests in both protocols.
#include "common/protocol/request_compose.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol/binary_format.h"
#include "common/protocol/binary_parser.h"
#include "common/protocol/text_parser.h"

namespace rend::proto {
namespace {

constexpr size_t kMaxItem = 2 * 1024 * 1024;

std::string text(const Request& r) {
  std::string out;
  compose_text_request(r, out);
  return out;
}

std::string binary(const Request& r) {
  std::string out;
  compose_binary_request(r, out);
  return out;
}

Request make(Command command) {
  Request r;
  r.command = command;
  return r;
}

std::vector<std::string> split_keys(std::string_view keys) {
  std::vector<std::string> out;
  for_each_key(keys, [&](std::string_view k) { out.emplace_back(k); });
  return out;
}

// Independent big-endian encoder for the expected bytes.
void put(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::string expected_packet(uint8_t opcode, std::string_view extras, std::string_view key, std::string_view value,
                            uint32_t opaque, uint64_t cas) {
  std::string s;
  put(s, 0x80, 1);
  put(s, opcode, 1);
  put(s, key.size(), 2);
  put(s, extras.size(), 1);
  put(s, 0, 1);
  put(s, 0, 2);
  put(s, extras.size() + key.size() + value.size(), 4);
  put(s, opaque, 4);
  put(s, cas, 8);
  s.append(extras);
  s.append(key);
  s.append(value);
  return s;
}

std::string be(uint64_t v, int bytes) {
  std::string s;
  put(s, v, bytes);
  return s;
}

// ---- exact bytes ----

TEST(ComposeText, ExactBytes) {
  Request r = make(Command::kSet);
  r.key = "k";
  r.flags = 5;
  r.value = "abc";
  r.quiet = true;
  EXPECT_EQ(text(r), "set k 5 0 3 noreply\r\nabc\r\n");

  r = make(Command::kCas);
  r.key = "k";
  r.flags = 1;
  r.exptime = 2;
  r.value = "abc";
  r.cas = 77;
  EXPECT_EQ(text(r), "cas k 1 2 3 77\r\nabc\r\n");
  r.quiet = true;
  EXPECT_EQ(text(r), "cas k 1 2 3 77 noreply\r\nabc\r\n");

  r = make(Command::kPrepend);
  r.key = "k";
  EXPECT_EQ(text(r), "prepend k 0 0 0\r\n\r\n");

  r = make(Command::kGet);
  r.keys = "a b";
  EXPECT_EQ(text(r), "get a b\r\n");
  r.command = Command::kGets;
  EXPECT_EQ(text(r), "gets a b\r\n");
  r.command = Command::kGat;
  r.exptime = 10;
  EXPECT_EQ(text(r), "gat 10 a b\r\n");
  r.command = Command::kGats;
  r.exptime = kExpireImmediately;
  EXPECT_EQ(text(r), "gats 2592001 a b\r\n");
  r.keys = {};
  EXPECT_EQ(text(r), "gats 2592001\r\n");

  r = make(Command::kDelete);
  r.key = "k";
  EXPECT_EQ(text(r), "delete k\r\n");
  r.quiet = true;
  EXPECT_EQ(text(r), "delete k noreply\r\n");

  r = make(Command::kIncr);
  r.key = "k";
  r.delta = UINT64_MAX;
  EXPECT_EQ(text(r), "incr k 18446744073709551615\r\n");
  r.command = Command::kDecr;
  r.delta = 3;
  r.quiet = true;
  EXPECT_EQ(text(r), "decr k 3 noreply\r\n");

  r = make(Command::kTouch);
  r.key = "k";
  r.exptime = 5;
  r.quiet = true;
  EXPECT_EQ(text(r), "touch k 5 noreply\r\n");

  r = make(Command::kFlushAll);
  EXPECT_EQ(text(r), "flush_all\r\n");
  r.exptime = 10;  // ignored without has_exptime
  EXPECT_EQ(text(r), "flush_all\r\n");
  r.has_exptime = true;
  r.quiet = true;
  EXPECT_EQ(text(r), "flush_all 10 noreply\r\n");

  EXPECT_EQ(text(make(Command::kVersion)), "version\r\n");
  EXPECT_EQ(text(make(Command::kQuit)), "quit\r\n");
  EXPECT_EQ(text(make(Command::kVerbosity)), "verbosity 1\r\n");
  r = make(Command::kVerbosity);
  r.quiet = true;
  EXPECT_EQ(text(r), "verbosity 1 noreply\r\n");
  EXPECT_EQ(text(make(Command::kStats)), "stats\r\n");
  r = make(Command::kStats);
  r.stats_group = "items";
  EXPECT_EQ(text(r), "stats items\r\n");
}

TEST(ComposeText, NoTextFormAppendsNothing) {
  for (const Command c : {Command::kNoop, Command::kGetE, Command::kError, Command::kTooLarge, Command::kUnknown}) {
    Request r = make(c);
    r.key = "k";
    std::string out = "kept";
    compose_text_request(r, out);
    EXPECT_EQ(out, "kept") << static_cast<int>(c);
  }
}

TEST(ComposeText, AppendsToExistingOutput) {
  Request r = make(Command::kGet);
  r.keys = "a";
  std::string out = "version\r\n";
  compose_text_request(r, out);
  EXPECT_EQ(out, "version\r\nget a\r\n");
}

TEST(ComposeBinary, ExactBytes) {
  Request r = make(Command::kSet);
  r.key = "key";
  r.value = "value";
  r.flags = 0xdeadbeef;
  r.exptime = 300;
  r.cas = 0x0102030405060708;
  r.opaque = 0xcafebabe;
  EXPECT_EQ(binary(r),
            expected_packet(0x01, be(0xdeadbeef, 4) + be(300, 4), "key", "value", 0xcafebabe, 0x0102030405060708));
  r.quiet = true;
  EXPECT_EQ(binary(r).substr(0, 2), "\x80\x11");

  r = make(Command::kAppend);
  r.key = "k";
  r.value = "tail";
  EXPECT_EQ(binary(r), expected_packet(0x0e, "", "k", "tail", 0, 0));

  r = make(Command::kGet);
  r.key = "k";
  r.quiet = true;
  r.return_key = true;
  r.opaque = 9;
  EXPECT_EQ(binary(r), expected_packet(0x0d, "", "k", "", 9, 0));

  r = make(Command::kIncr);
  r.key = "n";
  r.delta = UINT64_MAX;
  r.initial = 5;
  r.create_exptime = 0xffffffff;
  EXPECT_EQ(binary(r), expected_packet(0x05, be(UINT64_MAX, 8) + be(5, 8) + be(0xffffffff, 4), "n", "", 0, 0));

  r = make(Command::kTouch);
  r.key = "k";
  r.exptime = 10;
  EXPECT_EQ(binary(r), expected_packet(0x1c, be(10, 4), "k", "", 0, 0));

  r = make(Command::kGat);
  r.key = "k";
  r.exptime = 10;
  r.return_key = true;
  EXPECT_EQ(binary(r), expected_packet(0x23, be(10, 4), "k", "", 0, 0));

  r = make(Command::kFlushAll);
  EXPECT_EQ(binary(r), expected_packet(0x08, "", "", "", 0, 0));
  r.has_exptime = true;
  r.exptime = 60;
  r.quiet = true;
  EXPECT_EQ(binary(r), expected_packet(0x18, be(60, 4), "", "", 0, 0));

  EXPECT_EQ(binary(make(Command::kVerbosity)), expected_packet(0x1b, be(0, 4), "", "", 0, 0));
  EXPECT_EQ(binary(make(Command::kNoop)), expected_packet(0x0a, "", "", "", 0, 0));
  EXPECT_EQ(binary(make(Command::kVersion)), expected_packet(0x0b, "", "", "", 0, 0));
  EXPECT_EQ(binary(make(Command::kStats)), expected_packet(0x10, "", "", "", 0, 0));
  r = make(Command::kStats);
  r.stats_group = "slabs";
  EXPECT_EQ(binary(r), expected_packet(0x10, "", "slabs", "", 0, 0));
  r = make(Command::kQuit);
  r.quiet = true;
  EXPECT_EQ(binary(r), expected_packet(0x17, "", "", "", 0, 0));
  r = make(Command::kGetE);
  r.key = "k";
  EXPECT_EQ(binary(r), expected_packet(0x40, "", "k", "", 0, 0));
}

TEST(ComposeBinary, ExplicitOpcodeWins) {
  Request r = make(Command::kGet);
  r.key = "k";
  r.opcode = bin::kGetKQ;
  EXPECT_EQ(binary(r), expected_packet(0x0d, "", "k", "", 0, 0));
}

TEST(ComposeBinary, TextOnlyAndNonRequestsAppendNothing) {
  for (const Command c : {Command::kGets, Command::kGats, Command::kError, Command::kTooLarge, Command::kUnknown}) {
    Request r = make(c);
    r.key = "k";
    std::string out = "kept";
    compose_binary_request(r, out);
    EXPECT_EQ(out, "kept") << static_cast<int>(c);
  }
}

TEST(ComposeBinary, OpcodeTable) {
  struct Row {
    Command command;
    uint8_t loud, quiet, key, key_quiet;
  };
  const Row rows[] = {
      {Command::kGet, 0x00, 0x09, 0x0c, 0x0d},      {Command::kGat, 0x1d, 0x1e, 0x23, 0x24},
      {Command::kGetE, 0x40, 0x41, 0x40, 0x41},     {Command::kSet, 0x01, 0x11, 0x01, 0x11},
      {Command::kCas, 0x01, 0x11, 0x01, 0x11},      {Command::kAdd, 0x02, 0x12, 0x02, 0x12},
      {Command::kReplace, 0x03, 0x13, 0x03, 0x13},  {Command::kAppend, 0x0e, 0x19, 0x0e, 0x19},
      {Command::kPrepend, 0x0f, 0x1a, 0x0f, 0x1a},  {Command::kDelete, 0x04, 0x14, 0x04, 0x14},
      {Command::kIncr, 0x05, 0x15, 0x05, 0x15},     {Command::kDecr, 0x06, 0x16, 0x06, 0x16},
      {Command::kQuit, 0x07, 0x17, 0x07, 0x17},     {Command::kFlushAll, 0x08, 0x18, 0x08, 0x18},
      {Command::kNoop, 0x0a, 0x0a, 0x0a, 0x0a},     {Command::kVersion, 0x0b, 0x0b, 0x0b, 0x0b},
      {Command::kStats, 0x10, 0x10, 0x10, 0x10},    {Command::kVerbosity, 0x1b, 0x1b, 0x1b, 0x1b},
      {Command::kTouch, 0x1c, 0x1c, 0x1c, 0x1c},    {Command::kGets, 0xff, 0xff, 0xff, 0xff},
      {Command::kGats, 0xff, 0xff, 0xff, 0xff},     {Command::kError, 0xff, 0xff, 0xff, 0xff},
      {Command::kTooLarge, 0xff, 0xff, 0xff, 0xff}, {Command::kUnknown, 0xff, 0xff, 0xff, 0xff},
  };
  for (const Row& row : rows) {
    const int c = static_cast<int>(row.command);
    EXPECT_EQ(binary_opcode_for(row.command, false, false), row.loud) << c;
    EXPECT_EQ(binary_opcode_for(row.command, true, false), row.quiet) << c;
    EXPECT_EQ(binary_opcode_for(row.command, false, true), row.key) << c;
    EXPECT_EQ(binary_opcode_for(row.command, true, true), row.key_quiet) << c;
  }
}

// ---- round trips ----

// Every strict prefix of a composed request must be "need more" (checked for small requests only).
template <typename ParseFn>
void expect_prefixes_need_more(const std::string& wire, ParseFn parse_fn) {
  if (wire.size() > 4096) return;
  for (size_t cut = 0; cut < wire.size(); ++cut) {
    const ParseResult p = parse_fn(std::span<const char>(wire.data(), cut));
    ASSERT_EQ(p.status, ParseStatus::kNeedMore) << testing::PrintToString(wire) << " cut at " << cut;
  }
}

std::string binaryish_value() {
  std::string v;
  for (int i = 0; i < 256; ++i) v += static_cast<char>(i);
  return v + "\r\n\r\nEND\r\n" + std::string(3, '\0');
}

std::string big_value() {
  std::string v(1024 * 1024, '\0');
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<char>((i * 131 + 7) % 256);
  return v;
}

const std::vector<std::string>& values() {
  static const std::vector<std::string> v = {"", "v", "hello world", "\r\n", binaryish_value(), big_value()};
  return v;
}

// Keys valid in both protocols (no spaces or control characters, at most 250 bytes).
const std::vector<std::string>& keys() {
  static const std::vector<std::string> k = {"k", "user:1234/profile", "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",
                                             std::string(250, 'z')};
  return k;
}

const uint32_t kFlags[] = {0, 1, 0x80000000u, 0xffffffffu};
const uint64_t kDeltas[] = {0, 1, 1u << 31, UINT64_MAX};

void expect_text_round_trip(const Request& in) {
  const std::string wire = text(in);
  SCOPED_TRACE(testing::PrintToString(wire.substr(0, 300)));
  const ParseResult p = parse_text(std::span<const char>(wire.data(), wire.size()), kMaxItem);
  ASSERT_EQ(p.status, ParseStatus::kRequest);
  ASSERT_EQ(p.consumed, wire.size());
  const Request& out = p.request;
  EXPECT_EQ(out.command, in.command);
  EXPECT_EQ(out.key, in.key);
  EXPECT_EQ(split_keys(out.keys), split_keys(in.keys));
  EXPECT_EQ(out.value, in.value);
  EXPECT_EQ(out.flags, in.flags);
  EXPECT_EQ(out.exptime, in.exptime);
  EXPECT_EQ(out.cas, in.cas);
  EXPECT_EQ(out.delta, in.delta);
  EXPECT_EQ(out.quiet, in.quiet);
  EXPECT_EQ(out.has_exptime, in.has_exptime);
  EXPECT_EQ(out.stats_group, in.stats_group);
  expect_prefixes_need_more(wire, [](std::span<const char> s) { return parse_text(s, kMaxItem); });
}

// Text exptimes are signed 32-bit on the wire; these are the values that survive unchanged.
const uint32_t kTextExptimes[] = {0, 1, 2592000, kExpireImmediately, 0x7fffffff};

TEST(RoundTripText, Reads) {
  const std::vector<std::string> key_lists = {"k", "a b c", "user:1 user:2", std::string(250, 'z') + " x"};
  for (const Command c : {Command::kGet, Command::kGets, Command::kGat, Command::kGats}) {
    for (const std::string& keys_line : key_lists) {
      for (const uint32_t exptime : kTextExptimes) {
        Request r = make(c);
        r.keys = keys_line;
        if (c == Command::kGat || c == Command::kGats) r.exptime = exptime;
        expect_text_round_trip(r);
      }
    }
  }
  // A 100-key multi-get.
  std::string many;
  for (int i = 0; i < 100; ++i) many += (i ? " key" : "key") + std::to_string(i);
  Request r = make(Command::kGet);
  r.keys = many;
  expect_text_round_trip(r);
}

TEST(RoundTripText, Storage) {
  for (const Command c :
       {Command::kSet, Command::kAdd, Command::kReplace, Command::kAppend, Command::kPrepend, Command::kCas}) {
    for (const std::string& key : keys()) {
      for (const std::string& value : values()) {
        for (const uint32_t flags : kFlags) {
          for (const bool quiet : {false, true}) {
            Request r = make(c);
            r.key = key;
            r.value = value;
            r.flags = flags;
            r.exptime = kTextExptimes[flags % 5];
            r.quiet = quiet;
            if (c == Command::kCas) r.cas = flags == 0 ? UINT64_MAX : flags;
            expect_text_round_trip(r);
          }
        }
      }
    }
  }
}

TEST(RoundTripText, KeyedCommands) {
  for (const std::string& key : keys()) {
    for (const bool quiet : {false, true}) {
      Request r = make(Command::kDelete);
      r.key = key;
      r.quiet = quiet;
      expect_text_round_trip(r);
      for (const Command c : {Command::kIncr, Command::kDecr}) {
        for (const uint64_t delta : kDeltas) {
          r = make(c);
          r.key = key;
          r.delta = delta;
          r.quiet = quiet;
          expect_text_round_trip(r);
        }
      }
      for (const uint32_t exptime : kTextExptimes) {
        r = make(Command::kTouch);
        r.key = key;
        r.exptime = exptime;
        r.quiet = quiet;
        expect_text_round_trip(r);
      }
    }
  }
}

TEST(RoundTripText, KeylessCommands) {
  for (const bool quiet : {false, true}) {
    Request r = make(Command::kFlushAll);
    r.quiet = quiet;
    expect_text_round_trip(r);
    for (const uint32_t delay : {1u, 60u, 0x7fffffffu}) {
      r.has_exptime = true;
      r.exptime = delay;
      expect_text_round_trip(r);
    }
    r = make(Command::kVerbosity);
    r.quiet = quiet;
    expect_text_round_trip(r);
  }
  expect_text_round_trip(make(Command::kVersion));
  expect_text_round_trip(make(Command::kQuit));
  expect_text_round_trip(make(Command::kStats));
  for (const char* group : {"items", "slabs", "settings", "detail dump"}) {
    Request r = make(Command::kStats);
    r.stats_group = group;
    expect_text_round_trip(r);
  }
}

void expect_binary_round_trip(const Request& in, Command expected_command) {
  const std::string wire = binary(in);
  SCOPED_TRACE(testing::PrintToString(wire.substr(0, 64)));
  const ParseResult p = parse_binary_request(std::span<const char>(wire.data(), wire.size()), kMaxItem);
  ASSERT_EQ(p.status, ParseStatus::kRequest);
  ASSERT_EQ(p.consumed, wire.size());
  const Request& out = p.request;
  EXPECT_EQ(out.command, expected_command);
  EXPECT_EQ(out.opcode, binary_opcode_for(in.command, in.quiet, in.return_key));
  EXPECT_EQ(out.key, in.key);
  EXPECT_EQ(out.value, in.value);
  EXPECT_EQ(out.flags, in.flags);
  EXPECT_EQ(out.exptime, in.exptime);
  EXPECT_EQ(out.cas, in.cas);
  EXPECT_EQ(out.delta, in.delta);
  EXPECT_EQ(out.initial, in.initial);
  EXPECT_EQ(out.create_exptime, in.create_exptime);
  EXPECT_EQ(out.quiet, in.quiet);
  EXPECT_EQ(out.return_key, in.return_key);
  EXPECT_EQ(out.has_exptime, in.has_exptime);
  EXPECT_EQ(out.stats_group, in.stats_group);
  EXPECT_EQ(out.opaque, in.opaque);
  expect_prefixes_need_more(wire, [](std::span<const char> s) { return parse_binary_request(s, kMaxItem); });
}

void expect_binary_round_trip(const Request& in) { expect_binary_round_trip(in, in.command); }

// memcached 1.6.18 answers binary verbosity (0x1b) "Unknown command", and so does rend's parser:
// a composed verbosity packet is well framed but unknown, its body swallowed.
TEST(RoundTripBinary, VerbosityIsUnknownLikeMemcached) {
  const std::string wire = binary(make(Command::kVerbosity));
  const ParseResult p = parse_binary_request(std::span<const char>(wire.data(), wire.size()), kMaxItem);
  ASSERT_EQ(p.status, ParseStatus::kRequest);
  EXPECT_EQ(p.request.command, Command::kUnknown);
  EXPECT_EQ(p.swallow, 4u);  // memcached swallows the body length after the header it read
}

const uint32_t kBinaryExptimes[] = {0, 1, 2592000, kExpireImmediately, 0xffffffffu};

TEST(RoundTripBinary, Storage) {
  uint32_t opaque = 1;
  for (const Command c : {Command::kSet, Command::kAdd, Command::kReplace, Command::kAppend, Command::kPrepend}) {
    const bool has_extras = c != Command::kAppend && c != Command::kPrepend;
    for (const std::string& key : keys()) {
      for (const std::string& value : values()) {
        for (const uint32_t flags : kFlags) {
          for (const bool quiet : {false, true}) {
            Request r = make(c);
            r.key = key;
            r.value = value;
            if (has_extras) {
              r.flags = flags;
              r.exptime = kBinaryExptimes[flags % 5];
            }
            r.cas = flags == 0 ? 0 : UINT64_MAX - flags;
            r.quiet = quiet;
            r.opaque = opaque++ * 0x01010101u;
            expect_binary_round_trip(r);
          }
        }
      }
    }
  }
}

TEST(RoundTripBinary, TextCasBecomesSetWithCas) {
  Request r = make(Command::kCas);
  r.key = "k";
  r.value = "v";
  r.flags = 3;
  r.exptime = 4;
  r.cas = 12345;
  expect_binary_round_trip(r, Command::kSet);
}

TEST(RoundTripBinary, Reads) {
  for (const std::string& key : keys()) {
    for (const bool quiet : {false, true}) {
      for (const bool return_key : {false, true}) {
        Request r = make(Command::kGet);
        r.key = key;
        r.quiet = quiet;
        r.return_key = return_key;
        r.opaque = 0xfedcba98;
        expect_binary_round_trip(r);
        for (const uint32_t exptime : kBinaryExptimes) {
          r.command = Command::kGat;
          r.exptime = exptime;
          expect_binary_round_trip(r);
        }
      }
      Request e = make(Command::kGetE);
      e.key = key;
      e.quiet = quiet;
      expect_binary_round_trip(e);
    }
  }
}

TEST(RoundTripBinary, KeyedCommands) {
  for (const std::string& key : keys()) {
    for (const bool quiet : {false, true}) {
      Request r = make(Command::kDelete);
      r.key = key;
      r.quiet = quiet;
      r.cas = 99;
      expect_binary_round_trip(r);
      for (const Command c : {Command::kIncr, Command::kDecr}) {
        for (const uint64_t delta : kDeltas) {
          r = make(c);
          r.key = key;
          r.delta = delta;
          r.initial = ~delta;
          r.create_exptime = static_cast<uint32_t>(delta);
          r.quiet = quiet;
          expect_binary_round_trip(r);
        }
      }
    }
    for (const uint32_t exptime : kBinaryExptimes) {
      Request r = make(Command::kTouch);
      r.key = key;
      r.exptime = exptime;
      expect_binary_round_trip(r);
    }
  }
}

TEST(RoundTripBinary, KeylessCommands) {
  for (const bool quiet : {false, true}) {
    Request r = make(Command::kFlushAll);
    r.quiet = quiet;
    expect_binary_round_trip(r);
    for (const uint32_t delay : {0u, 60u, 0xffffffffu}) {
      r.has_exptime = true;
      r.exptime = delay;
      expect_binary_round_trip(r);
    }
    r = make(Command::kQuit);
    r.quiet = quiet;
    expect_binary_round_trip(r);
  }
  expect_binary_round_trip(make(Command::kNoop));
  expect_binary_round_trip(make(Command::kVersion));
  expect_binary_round_trip(make(Command::kStats));
  Request r = make(Command::kStats);
  r.stats_group = "slabs";
  expect_binary_round_trip(r);
}

TEST(RoundTripBinary, StreamOfRequestsParsesInOrder) {
  std::vector<Request> requests;
  for (const Command c : {Command::kSet, Command::kGet, Command::kIncr, Command::kNoop, Command::kQuit}) {
    Request r = make(c);
    if (c != Command::kNoop && c != Command::kQuit) r.key = "k";
    if (c == Command::kSet) r.value = "v";
    r.quiet = c == Command::kGet;
    r.opaque = static_cast<uint32_t>(requests.size());
    requests.push_back(r);
  }
  std::string wire;
  for (const Request& r : requests) compose_binary_request(r, wire);
  size_t at = 0;
  for (const Request& r : requests) {
    const ParseResult p = parse_binary_request(std::span<const char>(wire.data() + at, wire.size() - at), kMaxItem);
    ASSERT_EQ(p.status, ParseStatus::kRequest);
    EXPECT_EQ(p.request.command, r.command);
    EXPECT_EQ(p.request.opaque, r.opaque);
    at += p.consumed;
  }
  EXPECT_EQ(at, wire.size());
}

}  // namespace
}  // namespace rend::proto
