// Unit tests for the text protocol parser: framing (every prefix of a request is "need more"),
// field extraction, and memcached 1.6.18's exact validation and error replies.
#include "common/protocol/text_parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rend::proto {
namespace {

constexpr size_t kMaxItem = 1024 * 1024;

// Parses a private, exactly-sized copy of `bytes`, so a parser reading past the end of its input
// reads past the end of a heap block (which AddressSanitizer reports) rather than into test data.
// The result's string_views point into `buffer`, which lives as long as the Parsed.
struct Parsed {
  std::vector<char> buffer;
  ParseResult result;
  const Request& req() const { return result.request; }
};

Parsed parse(std::string_view bytes, size_t max_item_size = kMaxItem) {
  Parsed p;
  p.buffer.assign(bytes.begin(), bytes.end());
  static const char kEmpty = 0;  // a real, non-null pointer for an empty input
  const char* data = p.buffer.empty() ? &kEmpty : p.buffer.data();
  p.result = parse_text(std::span<const char>(data, p.buffer.size()), max_item_size);
  return p;
}

std::vector<std::string> split_keys(std::string_view keys) {
  std::vector<std::string> out;
  for_each_key(keys, [&](std::string_view k) { out.emplace_back(k); });
  return out;
}

struct Case {
  std::string bytes;
  Command command;
  bool quiet;
};

// One valid request of every text command, with its noreply variants where it has one.
std::vector<Case> valid_corpus() {
  std::vector<Case> c = {
      {"get a\r\n", Command::kGet, false},
      {"get a bb ccc\r\n", Command::kGet, false},
      {"gets a\r\n", Command::kGets, false},
      {"gets a b\r\n", Command::kGets, false},
      {"gat 10 a\r\n", Command::kGat, false},
      {"gat 10 a b c\r\n", Command::kGat, false},
      {"gats 0 a\r\n", Command::kGats, false},
      {"gats -1 a b\r\n", Command::kGats, false},
      {"set k 1 2 3\r\nabc\r\n", Command::kSet, false},
      {"set k 1 2 3 noreply\r\nabc\r\n", Command::kSet, true},
      {"set k 0 0 0\r\n\r\n", Command::kSet, false},
      // The value holds "\r\n": a parser scanning for the terminator instead of counting fails.
      {"set k 0 0 4\r\n\r\n\r\n\r\n", Command::kSet, false},
      {"add k 0 0 1\r\nx\r\n", Command::kAdd, false},
      {"add k 0 0 1 noreply\r\nx\r\n", Command::kAdd, true},
      {"replace k 0 0 1\r\nx\r\n", Command::kReplace, false},
      {"replace k 0 0 1 noreply\r\nx\r\n", Command::kReplace, true},
      {"append k 0 0 2\r\nxy\r\n", Command::kAppend, false},
      {"append k 0 0 2 noreply\r\nxy\r\n", Command::kAppend, true},
      {"prepend k 0 0 2\r\nxy\r\n", Command::kPrepend, false},
      {"prepend k 0 0 2 noreply\r\nxy\r\n", Command::kPrepend, true},
      {"cas k 0 0 1 99\r\nx\r\n", Command::kCas, false},
      {"cas k 0 0 1 99 noreply\r\nx\r\n", Command::kCas, true},
      {"delete k\r\n", Command::kDelete, false},
      {"delete k noreply\r\n", Command::kDelete, true},
      {"delete k 0\r\n", Command::kDelete, false},
      {"delete k 0 noreply\r\n", Command::kDelete, true},
      {"incr k 1\r\n", Command::kIncr, false},
      {"incr k 1 noreply\r\n", Command::kIncr, true},
      {"decr k 5\r\n", Command::kDecr, false},
      {"decr k 5 noreply\r\n", Command::kDecr, true},
      {"touch k 10\r\n", Command::kTouch, false},
      {"touch k 10 noreply\r\n", Command::kTouch, true},
      {"flush_all\r\n", Command::kFlushAll, false},
      {"flush_all 10\r\n", Command::kFlushAll, false},
      {"flush_all noreply\r\n", Command::kFlushAll, true},
      {"flush_all 10 noreply\r\n", Command::kFlushAll, true},
      {"verbosity 1\r\n", Command::kVerbosity, false},
      {"verbosity 1 noreply\r\n", Command::kVerbosity, true},
      {"stats\r\n", Command::kStats, false},
      {"stats slabs\r\n", Command::kStats, false},
      {"version\r\n", Command::kVersion, false},
      {"quit\r\n", Command::kQuit, false},
      {"get a\n", Command::kGet, false},
      {"set k 0 0 1\nx\r\n", Command::kSet, false},
  };
  return c;
}

TEST(TextParserFraming, EveryStrictPrefixNeedsMoreAndTheWholeParses) {
  for (const Case& c : valid_corpus()) {
    for (size_t cut = 0; cut < c.bytes.size(); ++cut) {
      const Parsed p = parse(std::string_view(c.bytes).substr(0, cut));
      ASSERT_EQ(p.result.status, ParseStatus::kNeedMore)
          << "input " << testing::PrintToString(c.bytes) << " cut at " << cut;
      ASSERT_EQ(p.result.consumed, 0u) << c.bytes << " cut at " << cut;
    }
    const Parsed p = parse(c.bytes);
    ASSERT_EQ(p.result.status, ParseStatus::kRequest) << c.bytes;
    EXPECT_EQ(p.result.consumed, c.bytes.size()) << c.bytes;
    EXPECT_EQ(p.result.swallow, 0u) << c.bytes;
    EXPECT_EQ(p.req().command, c.command) << c.bytes;
    EXPECT_EQ(p.req().quiet, c.quiet) << c.bytes;
    EXPECT_EQ(p.req().protocol, Protocol::kText) << c.bytes;
  }
}

TEST(TextParserFraming, TwoConcatenatedRequestsParseOnlyTheFirst) {
  const std::vector<Case> corpus = valid_corpus();
  for (const Case& a : corpus) {
    for (const Case& b : corpus) {
      const Parsed p = parse(a.bytes + b.bytes);
      ASSERT_EQ(p.result.status, ParseStatus::kRequest) << a.bytes << b.bytes;
      ASSERT_EQ(p.result.consumed, a.bytes.size()) << a.bytes << b.bytes;
      ASSERT_EQ(p.req().command, a.command) << a.bytes << b.bytes;
    }
  }
}

TEST(TextParserFields, MultiKeyReads) {
  Parsed p = parse("get a bb ccc\r\n");
  EXPECT_EQ(split_keys(p.req().keys), (std::vector<std::string>{"a", "bb", "ccc"}));

  p = parse("gets  a   b \r\n");
  EXPECT_EQ(p.req().command, Command::kGets);
  EXPECT_EQ(split_keys(p.req().keys), (std::vector<std::string>{"a", "b"}));

  p = parse("gat 10 a b c\r\n");
  EXPECT_EQ(p.req().exptime, 10u);
  EXPECT_EQ(split_keys(p.req().keys), (std::vector<std::string>{"a", "b", "c"}));

  p = parse("gats -1 a b\r\n");
  EXPECT_EQ(p.req().command, Command::kGats);
  EXPECT_EQ(p.req().exptime, kExpireImmediately);
  EXPECT_EQ(split_keys(p.req().keys), (std::vector<std::string>{"a", "b"}));

  // Duplicates are kept, in order.
  p = parse("get x y x\r\n");
  EXPECT_EQ(split_keys(p.req().keys), (std::vector<std::string>{"x", "y", "x"}));
}

TEST(TextParserFields, StorageCommands) {
  Parsed p = parse("set key 123 456 5\r\nhello\r\n");
  ASSERT_EQ(p.req().command, Command::kSet);
  EXPECT_EQ(p.req().key, "key");
  EXPECT_EQ(p.req().flags, 123u);
  EXPECT_EQ(p.req().exptime, 456u);
  EXPECT_EQ(p.req().value, "hello");
  EXPECT_EQ(p.req().cas, 0u);
  EXPECT_FALSE(p.req().quiet);

  p = parse("cas key 4294967295 0 3 18446744073709551615 noreply\r\nabc\r\n");
  ASSERT_EQ(p.req().command, Command::kCas);
  EXPECT_EQ(p.req().flags, 0xffffffffu);
  EXPECT_EQ(p.req().cas, UINT64_MAX);
  EXPECT_EQ(p.req().value, "abc");
  EXPECT_TRUE(p.req().quiet);

  p = parse("set k 0 0 4\r\n\r\n\r\n\r\n");
  EXPECT_EQ(p.req().value, "\r\n\r\n");

  p = parse("set k 0 0 0\r\n\r\n");
  EXPECT_EQ(p.req().value, "");
  EXPECT_EQ(p.result.consumed, 15u);
}

TEST(TextParserFields, OtherCommands) {
  Parsed p = parse("delete k 0 noreply\r\n");
  EXPECT_EQ(p.req().key, "k");
  EXPECT_TRUE(p.req().quiet);

  p = parse("incr k 18446744073709551615\r\n");
  ASSERT_EQ(p.req().command, Command::kIncr);
  EXPECT_EQ(p.req().key, "k");
  EXPECT_EQ(p.req().delta, UINT64_MAX);

  p = parse("decr k 7 noreply\r\n");
  ASSERT_EQ(p.req().command, Command::kDecr);
  EXPECT_EQ(p.req().delta, 7u);
  EXPECT_TRUE(p.req().quiet);

  p = parse("touch k 99\r\n");
  EXPECT_EQ(p.req().key, "k");
  EXPECT_EQ(p.req().exptime, 99u);

  p = parse("touch k -1\r\n");
  EXPECT_EQ(p.req().exptime, kExpireImmediately);

  p = parse("flush_all\r\n");
  EXPECT_FALSE(p.req().has_exptime);
  p = parse("flush_all 30\r\n");
  EXPECT_TRUE(p.req().has_exptime);
  EXPECT_EQ(p.req().exptime, 30u);
  EXPECT_FALSE(p.req().quiet);
  p = parse("flush_all 30 noreply\r\n");
  EXPECT_TRUE(p.req().has_exptime);
  EXPECT_EQ(p.req().exptime, 30u);
  EXPECT_TRUE(p.req().quiet);
  // A zero delay is no delay, as memcached treats it.
  p = parse("flush_all 0\r\n");
  EXPECT_EQ(p.req().command, Command::kFlushAll);
  EXPECT_FALSE(p.req().has_exptime);
  p = parse("flush_all noreply\r\n");
  EXPECT_FALSE(p.req().has_exptime);
  EXPECT_TRUE(p.req().quiet);

  p = parse("stats\r\n");
  EXPECT_EQ(p.req().stats_group, "");
  p = parse("stats slabs\r\n");
  EXPECT_EQ(p.req().stats_group, "slabs");

  p = parse("quit\r\n");
  EXPECT_TRUE(p.req().close_after);
  p = parse("version\r\n");
  EXPECT_FALSE(p.req().close_after);
}

// memcached 1.6.18's replies, observed against a real server.
struct ErrorCase {
  std::string input;
  std::string_view error_text;
  size_t consumed;
  bool quiet = false;
};

constexpr std::string_view kBadFormat = "CLIENT_ERROR bad command line format";
constexpr std::string_view kBadChunk = "CLIENT_ERROR bad data chunk";
constexpr std::string_view kBadDelta = "CLIENT_ERROR invalid numeric delta argument";
constexpr std::string_view kBadExptime = "CLIENT_ERROR invalid exptime argument";

TEST(TextParserErrors, Memcached1618Replies) {
  const std::string long_key(251, 'k');
  const std::vector<ErrorCase> cases = {
      {"get\r\n", "ERROR", 5},
      {"gets\r\n", "ERROR", 6},
      {"set a 0 0\r\n", "ERROR", 11},
      {"set a -1 0 1\r\n", kBadFormat, 14},  // only the line: memcached does not swallow the data
      {"set a 0 0 -1\r\n", kBadFormat, 14},
      {"set a 0 0 x\r\n", kBadFormat, 13},
      {"cas a 0 0 1 x\r\n", kBadFormat, 15},
      {"set a 0 0 3\r\nabcde\r\n", kBadChunk, 13 + 3 + 2},
      {"set a 0 0 1 noreply\r\nxx\r\n", kBadChunk, 21 + 1 + 2, true},
      {"set " + long_key + " 0 0 1\r\nx\r\n", kBadFormat, 4 + 251 + 8},
      {"get " + long_key + "\r\n", kBadFormat, 4 + 251 + 2},
      {"get a " + long_key + "\r\n", kBadFormat, 6 + 251 + 2},
      {"delete " + long_key + "\r\n", kBadFormat, 7 + 251 + 2},
      {"incr " + long_key + " 1\r\n", kBadFormat, 5 + 251 + 4},
      {"touch " + long_key + " 1\r\n", kBadFormat, 6 + 251 + 4},
      {"delete a 1\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]", 12},
      {"incr a x\r\n", kBadDelta, 10},
      {"incr n -1\r\n", kBadDelta, 11},
      {"incr a 18446744073709551616\r\n", kBadDelta, 29},
      {"decr a x\r\n", kBadDelta, 10},
      {"touch a x\r\n", kBadExptime, 11},
      {"gat x a\r\n", kBadExptime, 9},
      {"flush_all x\r\n", kBadExptime, 13},
      {"verbosity\r\n", "ERROR", 11},
      {"verbosity x\r\n", kBadFormat, 13},
      {"foo\r\n", "ERROR", 5},
      {"\r\n", "ERROR", 2},
      {"\n", "ERROR", 1},
      {"GET a\r\n", "ERROR", 7},
      // Wrong token counts are a plain "ERROR" (memcached's WANT_TOKENS checks).
      {"delete\r\n", "ERROR", 8},
      {"delete a 0 noreply x\r\n", "ERROR", 22},
      {"incr a\r\n", "ERROR", 8},
      {"touch a\r\n", "ERROR", 9},
  };
  for (const ErrorCase& c : cases) {
    const Parsed p = parse(c.input);
    ASSERT_EQ(p.result.status, ParseStatus::kRequest) << c.input;
    EXPECT_EQ(p.req().command, Command::kError) << c.input;
    EXPECT_EQ(p.req().error_text, c.error_text) << c.input;
    EXPECT_EQ(p.result.consumed, c.consumed) << c.input;
    EXPECT_EQ(p.result.swallow, 0u) << c.input;
    EXPECT_EQ(p.req().quiet, c.quiet) << c.input;
  }
}

TEST(TextParserErrors, ErrorLineIsFollowedByTheNextRequest) {
  // After an error the connection continues with the bytes after `consumed`. A bad data chunk
  // takes exactly <bytes>+2 bytes, so here the stray "\r\n" left behind is an empty command line
  // (memcached answers it with a second "ERROR"), and then the get is served.
  const std::string input = "set a 0 0 3\r\nabcde\r\nget a\r\n";
  const Parsed first = parse(input);
  ASSERT_EQ(first.req().command, Command::kError);
  ASSERT_EQ(first.result.consumed, 18u);
  const Parsed second = parse(std::string_view(input).substr(first.result.consumed));
  ASSERT_EQ(second.req().command, Command::kError);
  EXPECT_EQ(second.req().error_text, "ERROR");
  EXPECT_EQ(second.result.consumed, 2u);
  const Parsed third = parse(std::string_view(input).substr(first.result.consumed + 2));
  EXPECT_EQ(third.req().command, Command::kGet);
}

TEST(TextParserAccepts, MemcachedLenientForms) {
  Parsed p = parse("delete a 0\r\n");
  EXPECT_EQ(p.req().command, Command::kDelete);
  EXPECT_EQ(p.req().key, "a");

  p = parse("gat 0\r\n");
  EXPECT_EQ(p.req().command, Command::kGat);
  EXPECT_TRUE(split_keys(p.req().keys).empty());
  EXPECT_EQ(p.result.consumed, 7u);

  p = parse("verbosity 1 2\r\n");
  EXPECT_EQ(p.req().command, Command::kVerbosity);
  EXPECT_FALSE(p.req().quiet);

  // Flags are strtoul'd and truncated to 32 bits, as memcached does.
  p = parse("set a 4294967296 0 1\r\nx\r\n");
  ASSERT_EQ(p.req().command, Command::kSet);
  EXPECT_EQ(p.req().flags, 0u);
  EXPECT_EQ(p.req().value, "x");

  p = parse("set a 0 0 01\r\nx\r\n");
  ASSERT_EQ(p.req().command, Command::kSet);
  EXPECT_EQ(p.req().value, "x");

  // An unknown last token is not "noreply": the command is valid and answered.
  p = parse("set a 0 0 1 foo\r\nx\r\n");
  ASSERT_EQ(p.req().command, Command::kSet);
  EXPECT_FALSE(p.req().quiet);
  EXPECT_EQ(p.result.consumed, 20u);

  p = parse("set a 0 -5 1\r\nx\r\n");
  ASSERT_EQ(p.req().command, Command::kSet);
  EXPECT_EQ(p.req().exptime, kExpireImmediately);

  p = parse("get a\n");
  ASSERT_EQ(p.req().command, Command::kGet);
  EXPECT_EQ(split_keys(p.req().keys), std::vector<std::string>{"a"});
  EXPECT_EQ(p.result.consumed, 6u);

  p = parse("  get a\r\n");
  ASSERT_EQ(p.req().command, Command::kGet);
  EXPECT_EQ(split_keys(p.req().keys), std::vector<std::string>{"a"});
  EXPECT_EQ(p.result.consumed, 9u);

  // A 250-byte key is the longest allowed.
  const std::string key250(250, 'k');
  p = parse("set " + key250 + " 0 0 1\r\nx\r\n");
  ASSERT_EQ(p.req().command, Command::kSet);
  EXPECT_EQ(p.req().key, key250);
  p = parse("get " + key250 + "\r\n");
  ASSERT_EQ(p.req().command, Command::kGet);
}

TEST(TextParserLimits, TooLargeValueIsSwallowed) {
  const std::string line = "set a 0 0 2000000\r\n";
  const Parsed p = parse(line, 1048576);
  ASSERT_EQ(p.result.status, ParseStatus::kRequest);
  EXPECT_EQ(p.req().command, Command::kTooLarge);
  EXPECT_EQ(p.req().original, Command::kSet);
  EXPECT_EQ(p.req().key, "a");
  EXPECT_EQ(p.result.consumed, line.size());
  EXPECT_EQ(p.result.swallow, 2000002u);
  EXPECT_FALSE(p.req().quiet);
  EXPECT_EQ(p.req().error_text, "SERVER_ERROR object too large for cache");

  // The largest value memcached -I 1m takes under key "a" (its item header, the key, the CRLF
  // count: 59 + 1 bytes) is accepted; one byte more is too large.
  const std::string exact = "set a 0 0 1048516\r\n" + std::string(1048516, 'v') + "\r\n";
  const Parsed q = parse(exact, 1048576);
  EXPECT_EQ(q.req().command, Command::kSet);
  EXPECT_EQ(q.result.consumed, exact.size());
  EXPECT_EQ(parse("set a 0 0 1048517\r\n", 1048576).req().command, Command::kTooLarge);
  EXPECT_EQ(parse("set a 1 0 1048513\r\n", 1048576).req().command, Command::kTooLarge) << "flags take 4 bytes";
}

TEST(TextParserLimits, LongLineWithoutNewline) {
  // Not a get: memcached closes the connection once 2048 bytes hold no newline.
  Parsed p = parse(std::string(3000, 'x'));
  EXPECT_EQ(p.result.status, ParseStatus::kClose);

  // What can still be a large multi-get is read on.
  std::string get = "get ";
  for (int i = 0; i < 1500; ++i) get += "k ";
  ASSERT_EQ(get.size(), 3004u);
  p = parse(get);
  EXPECT_EQ(p.result.status, ParseStatus::kNeedMore);
  EXPECT_EQ(p.result.consumed, 0u);

  // A complete 2000-key get line is served.
  std::string line = "get";
  for (int i = 0; i < 2000; ++i) line += " k";
  line += "\r\n";
  ASSERT_GT(line.size(), 4000u);
  p = parse(line);
  ASSERT_EQ(p.result.status, ParseStatus::kRequest);
  EXPECT_EQ(p.req().command, Command::kGet);
  EXPECT_EQ(p.result.consumed, line.size());
  EXPECT_EQ(split_keys(p.req().keys).size(), 2000u);
}

TEST(TextParserLimits, GetLineLongerThanTheMultiGetBoundClosesHoweverItArrives) {
  std::string line = "get";
  while (line.size() < kMaxTextGetLine) line += " k";
  line.resize(kMaxTextGetLine);  // the longest line served: every prefix of it needs more
  ASSERT_EQ(parse(line).result.status, ParseStatus::kNeedMore);
  Parsed p = parse(line + "\n");
  ASSERT_EQ(p.result.status, ParseStatus::kRequest);
  EXPECT_EQ(p.req().command, Command::kGet);

  // One byte more: closed without a word, whether the newline came in the same read or not.
  line += "k";
  EXPECT_EQ(parse(line).result.status, ParseStatus::kClose);
  EXPECT_EQ(parse(line + "\r\n").result.status, ParseStatus::kClose);
  EXPECT_EQ(parse(line + "\n").result.status, ParseStatus::kClose);
}

TEST(TextParserLimits, CommandLinePastMemcachedsReadBufferCloses) {
  // memcached looks for a line's end within its 16 KiB read buffer: a line of 16384 bytes,
  // "\r\n" included, is the longest it ever reads; a storage command's key past 250 bytes on it
  // is a format error, one byte more closes the connection.
  auto set_line = [](size_t total) {
    const std::string head = "set ", tail = " 0 0 1\r\n";
    return head + std::string(total - head.size() - tail.size(), 'k') + tail + "x\r\n";
  };
  Parsed p = parse(set_line(kMaxTextCommandLine));
  ASSERT_EQ(p.result.status, ParseStatus::kRequest);
  EXPECT_EQ(p.req().command, Command::kError);
  EXPECT_EQ(p.req().error_text, "CLIENT_ERROR bad command line format");
  EXPECT_EQ(parse(set_line(kMaxTextCommandLine + 1)).result.status, ParseStatus::kClose);
  EXPECT_EQ(parse(std::string(kMaxTextCommandLine - 1, 'x') + "\n").req().error_text, "ERROR");
  EXPECT_EQ(parse(std::string(kMaxTextCommandLine, 'x') + "\n").result.status, ParseStatus::kClose);
  // A gat is no multi-get to memcached's reader: its long line closes too.
  std::string gat = "gat 0";
  while (gat.size() < kMaxTextCommandLine + 10) gat += " k";
  EXPECT_EQ(parse(gat + "\r\n").result.status, ParseStatus::kClose);
  std::string get = "get";
  while (get.size() < kMaxTextCommandLine + 10) get += " k";
  EXPECT_EQ(parse(get + "\r\n").req().command, Command::kGet);
}

TEST(TextParserHttp, AnUnknownCommandEndingInAnHttpVersionCloses) {
  for (const char* line : {"GET / HTTP/1.0\r\n", "PUT /a/b HTTP/1.1\r\n", "DELETE HTTP/1.1\r\n", "HTTP/1.0\r\n",
                           "xx HTTP/\r\n", "mgg / HTTP/1.0\r\n", "POST / HTTP/1.1 \r\n", "OPTIONS * HTTP/1.1\n"}) {
    EXPECT_EQ(parse(line).result.status, ParseStatus::kClose) << line;
  }
  // The 23rd token is the last memcached looks at.
  std::string at23 = "FOO", past23 = "FOO";
  for (int i = 0; i < 21; ++i) at23 += " a";
  for (int i = 0; i < 30; ++i) past23 += " a";
  EXPECT_EQ(parse(at23 + " HTTP/1.0 b c\r\n").result.status, ParseStatus::kClose);
  EXPECT_EQ(parse(past23 + " HTTP/1.0\r\n").req().error_text, "ERROR");
}

TEST(TextParserHttp, CommandsMemcachedKnowsKeepTheirAnswer) {
  // First letters that start memcached's own commands, two-letter meta names, and commands it
  // serves by name are answered as usual, whatever their last token.
  for (const char* line :
       {"gx / HTTP/1.0\r\n", "slabs / HTTP/1.0\r\n", "ax HTTP/1.0\r\n", "cx HTTP/1.0\r\n", "ix HTTP/1.0\r\n",
        "dx HTTP/1.0\r\n", "tx HTTP/1.0\r\n", "mx / HTTP/1.0\r\n", "G HTTP/1.0\r\n", "lru HTTP/1.0\r\n",
        "watch HTTP/1.0\r\n", "xx http/1.0\r\n", "FOO HTTP/1.0 /\r\n"}) {
    const Parsed p = parse(line);
    ASSERT_EQ(p.result.status, ParseStatus::kRequest) << line;
    EXPECT_EQ(p.req().error_text, "ERROR") << line;
  }
  EXPECT_EQ(parse("get / HTTP/1.0\r\n").req().command, Command::kGet);
  EXPECT_EQ(parse("version HTTP/1.0\r\n").req().command, Command::kVersion);
  const Parsed bget = parse("bget a b\r\n");
  EXPECT_EQ(bget.req().command, Command::kGet);
  EXPECT_EQ(split_keys(bget.req().keys), (std::vector<std::string>{"a", "b"}));
}

TEST(TextNumbers, U32Truncating) {
  uint32_t v = 7;
  EXPECT_FALSE(parse_u32_truncating("", v));
  EXPECT_FALSE(parse_u32_truncating("+", v));
  EXPECT_FALSE(parse_u32_truncating("-", v));
  EXPECT_TRUE(parse_u32_truncating("0", v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(parse_u32_truncating("+5", v));
  EXPECT_EQ(v, 5u);
  EXPECT_TRUE(parse_u32_truncating("-0", v));
  EXPECT_EQ(v, 0u);
  EXPECT_FALSE(parse_u32_truncating("-1", v));
  EXPECT_TRUE(parse_u32_truncating("4294967295", v));
  EXPECT_EQ(v, 4294967295u);
  EXPECT_TRUE(parse_u32_truncating("4294967296", v));  // strtoul then a 32-bit store
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(parse_u32_truncating("4294967301", v));
  EXPECT_EQ(v, 5u);
  EXPECT_FALSE(parse_u32_truncating("18446744073709551616", v));  // strtoul's ERANGE
  EXPECT_FALSE(parse_u32_truncating("5x", v));
  EXPECT_FALSE(parse_u32_truncating("x5", v));
  EXPECT_FALSE(parse_u32_truncating("1.5", v));
}

TEST(TextNumbers, I32) {
  int32_t v = 7;
  EXPECT_FALSE(parse_i32("", v));
  EXPECT_FALSE(parse_i32("-", v));
  EXPECT_TRUE(parse_i32("+5", v));
  EXPECT_EQ(v, 5);
  EXPECT_TRUE(parse_i32("-0", v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(parse_i32("-1", v));
  EXPECT_EQ(v, -1);
  EXPECT_TRUE(parse_i32("2147483647", v));
  EXPECT_EQ(v, INT32_MAX);
  EXPECT_TRUE(parse_i32("-2147483648", v));
  EXPECT_EQ(v, INT32_MIN);
  // memcached parses a long and stores it in an int32_t: observed on 1.6.18, "set a 0 0 4294967297"
  // stores a 1-byte value and exptime 2147483648 expires at once.
  EXPECT_TRUE(parse_i32("4294967297", v));
  EXPECT_EQ(v, 1);
  EXPECT_TRUE(parse_i32("2147483648", v));
  EXPECT_EQ(v, INT32_MIN);
  EXPECT_TRUE(parse_i32(" 12", v));
  EXPECT_EQ(v, 12);
  EXPECT_FALSE(parse_i32("9223372036854775808", v));  // strtol's ERANGE
  EXPECT_FALSE(parse_i32("99999999999999999999999", v));
  EXPECT_FALSE(parse_i32("12a", v));
  EXPECT_FALSE(parse_i32("--1", v));
}

TEST(TextNumbers, U64) {
  uint64_t v = 7;
  EXPECT_FALSE(parse_u64("", v));
  EXPECT_TRUE(parse_u64("+5", v));
  EXPECT_EQ(v, 5u);
  EXPECT_TRUE(parse_u64("-0", v));
  EXPECT_EQ(v, 0u);
  EXPECT_FALSE(parse_u64("-1", v));
  EXPECT_TRUE(parse_u64("18446744073709551615", v));
  EXPECT_EQ(v, UINT64_MAX);
  EXPECT_FALSE(parse_u64("18446744073709551616", v));
  EXPECT_FALSE(parse_u64("184467440737095516150", v));
  // As memcached's safe_strtoull: whitespace may end the number (a tab is not a token separator).
  EXPECT_TRUE(parse_u64("1\t", v));
  EXPECT_EQ(v, 1u);
  EXPECT_FALSE(parse_u64("1x", v));
  EXPECT_FALSE(parse_u64("0x10", v));
}

}  // namespace
}  // namespace rend::proto
