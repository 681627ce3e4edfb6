// The meta commands without sockets: memcached 1.6.18's flag validation (what its preparse
// refuses, and with which words), its base64, and the rules rend-l2 and chunked L1 execute
// (common/meta_rules.h): wins, stale marks, modes, counters, the order flags act in.
#include <gtest/gtest.h>

#include "common/meta_rules.h"
#include "common/protocol/item_size.h"
#include "common/protocol/meta_command.h"
#include "common/protocol/text_parser.h"

namespace rend {
namespace {

using proto::Command;
using proto::MetaOptions;

constexpr uint32_t kNow = 1'800'000'000;

std::string refusal(Command c, std::string_view flags, std::string_view key = "k") {
  MetaOptions o;
  std::string_view error;
  if (proto::parse_meta_options(c, key, flags, o, error)) return "accepted";
  return std::string(error);
}

TEST(MetaOptions, RefusesAsMemcachedDoes) {
  EXPECT_EQ(refusal(Command::kMetaGet, " v f c"), "accepted");
  EXPECT_EQ(refusal(Command::kMetaGet, " v v"), "CLIENT_ERROR duplicate flag");
  EXPECT_EQ(refusal(Command::kMetaGet, " y"), "CLIENT_ERROR invalid flag");
  EXPECT_EQ(refusal(Command::kMetaGet, " E5"), "CLIENT_ERROR invalid flag");  // not in 1.6.18
  // A bad argument does not stop the walk: the last one's words are reported.
  EXPECT_EQ(refusal(Command::kMetaGet, " Cx Jx"), "CLIENT_ERROR invalid numeric initial value");
  EXPECT_EQ(refusal(Command::kMetaGet, " Jx Cx"), "CLIENT_ERROR bad token in command line format");
  EXPECT_EQ(refusal(Command::kMetaGet, " Fx"), "CLIENT_ERROR bad command line format");
  EXPECT_EQ(refusal(Command::kMetaGet, " b", "not base64!"), "CLIENT_ERROR error decoding key");
  // md and ma word every flag problem alike.
  EXPECT_EQ(refusal(Command::kMetaDelete, " Nabc"), "CLIENT_ERROR invalid or duplicate flag");
  EXPECT_EQ(refusal(Command::kMetaArithmetic, " MII"), "CLIENT_ERROR invalid or duplicate flag");
  EXPECT_EQ(refusal(Command::kMetaArithmetic, " Mx"), "CLIENT_ERROR invalid mode for ma M token");
  // The opaque limit counts the O; an invalid ms mode is reported before it.
  EXPECT_EQ(refusal(Command::kMetaGet, " O" + std::string(31, 'x')), "accepted");
  // ms and md refuse a longer one; mg and ma run and answer the error then (apply_meta).
  EXPECT_EQ(refusal(Command::kMetaSet, " O" + std::string(32, 'x')), "CLIENT_ERROR opaque token too long");
  EXPECT_EQ(refusal(Command::kMetaDelete, " O" + std::string(32, 'x')), "CLIENT_ERROR opaque token too long");
  EXPECT_EQ(refusal(Command::kMetaGet, " O" + std::string(32, 'x')), "accepted");
  EXPECT_EQ(refusal(Command::kMetaArithmetic, " O" + std::string(32, 'x')), "accepted");
  EXPECT_EQ(refusal(Command::kMetaSet, " MX O" + std::string(40, 'x')), "CLIENT_ERROR invalid mode for ms M token");
}

TEST(MetaBase64, DecodesAsMemcachedDoes) {
  EXPECT_EQ(proto::base64_decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(proto::base64_decode("Zm9v!!!!"), "foo");  // bytes outside the alphabet are skipped
  EXPECT_EQ(proto::base64_decode("AA=="), std::string(1, '\0'));
  EXPECT_FALSE(proto::base64_decode("Zm9"));
  EXPECT_FALSE(proto::base64_decode("===="));
  EXPECT_EQ(proto::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(proto::base64_encode(std::string("\0bin", 4)), "AGJpbg==");
}

class MetaRules : public ::testing::Test {
 protected:
  // Runs `flags` on the current item and keeps what it wrote, as rend-l2 does.
  std::string run(Command c, std::string flags, std::string_view value = {}) {
    MetaOptions o;
    std::string_view error;
    if (!proto::parse_meta_options(c, {}, flags, o, error)) return std::string(error);
    const MetaRequest q{c, &o, flags, "k", value};
    MetaChange change = apply_meta(q, item_ ? &*item_ : nullptr, kNow, 1 << 20, [this] { return ++cas_; });
    if (change.write == Change::Write::kPut) item_ = change.item;
    if (change.write == Change::Write::kDelete) item_.reset();
    last_ = change.reply;
    return change.reply.bytes;
  }
  std::optional<Item> item_;
  uint64_t cas_ = 100;
  MetaReply last_;
};

TEST_F(MetaRules, OneClientWinsAMissingKeyAndTheOthersAreToldSo) {
  EXPECT_EQ(run(Command::kMetaGet, " N30 v"), "VA 0 W\r\n\r\n");
  EXPECT_FALSE(last_.clean);  // a placeholder: never copied into L1
  EXPECT_EQ(run(Command::kMetaGet, " N30 v"), "VA 0 Z\r\n\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " v t"), "VA 0 t30 Z\r\n\r\n");
  EXPECT_EQ(run(Command::kMetaSet, " T60", "fresh"), "HD\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " v"), "VA 5\r\nfresh\r\n");
  EXPECT_TRUE(last_.clean);
}

TEST_F(MetaRules, AStaleItemIsServedWithOneWinUntilANewValueLands) {
  run(Command::kMetaSet, "", "old");
  EXPECT_EQ(run(Command::kMetaDelete, " I T30"), "HD\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " v"), "VA 3 X W\r\nold\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " v"), "VA 3 Z X\r\nold\r\n");
  EXPECT_EQ(run(Command::kMetaDelete, " I"), "HD\r\n");  // a new stale mark: the next reader wins again
  EXPECT_EQ(run(Command::kMetaGet, " v"), "VA 3 X W\r\nold\r\n");
  EXPECT_EQ(run(Command::kMetaSet, "", "new"), "HD\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " v"), "VA 3\r\nnew\r\n");
}

TEST_F(MetaRules, AnOlderCasWithIIsStoredAsStale) {
  run(Command::kMetaSet, "", "a");
  const uint64_t first = item_->meta.cas;
  run(Command::kMetaSet, "", "b");
  EXPECT_EQ(run(Command::kMetaSet, " I C" + std::to_string(first), "old"), "HD\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " v"), "VA 3 X W\r\nold\r\n");
  EXPECT_EQ(run(Command::kMetaSet, " C1 c", "x"), "EX c0\r\n");
}

TEST_F(MetaRules, FlagsActWhereTheyStand) {
  run(Command::kMetaSet, " T95", "abc");
  EXPECT_EQ(run(Command::kMetaGet, " t T35"), "HD t95\r\n");  // t reports the TTL before T
  EXPECT_EQ(run(Command::kMetaGet, " T45 t"), "HD t45\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " s f k O9 h"), "HD s3 f0 kk O9 h1\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " k O1 q"), "HD kk O1\r\n");
  item_.reset();
  EXPECT_EQ(run(Command::kMetaGet, " O1 k v s"), "EN O1 kk\r\n");
  EXPECT_TRUE(last_.suppressible);
}

TEST_F(MetaRules, CountersLikeMemcached) {
  EXPECT_EQ(run(Command::kMetaArithmetic, ""), "NF\r\n");
  EXPECT_EQ(run(Command::kMetaArithmetic, " N0 J5 D3 v"), "VA 1\r\n5\r\n");
  EXPECT_FALSE(last_.suppressible);  // q hides a counter's new value, not what N created
  EXPECT_EQ(run(Command::kMetaArithmetic, " D5 v"), "VA 2\r\n10\r\n");
  EXPECT_TRUE(last_.suppressible);
  EXPECT_EQ(run(Command::kMetaArithmetic, " MD D1 v"), "VA 1\r\n9\r\n");
  EXPECT_EQ(item_->data, "9 ");  // rewritten in place, padded
  EXPECT_EQ(run(Command::kMetaArithmetic, " t T65"), "HD t-1\r\n");
  EXPECT_EQ(run(Command::kMetaArithmetic, " t"), "HD t65\r\n");
  run(Command::kMetaSet, "", "abc");
  EXPECT_EQ(run(Command::kMetaArithmetic, ""), "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
}

// Found against memcached 1.6.18 by a randomized differential run (tests/process/meta_corpus.py
// has them byte for byte).
TEST_F(MetaRules, ACounterThatGrowsIsANewItem) {
  run(Command::kMetaSet, " T95 F7", "99");
  run(Command::kMetaDelete, " I");
  EXPECT_EQ(run(Command::kMetaArithmetic, " T35 t v"), "VA 3 t35\r\n100\r\n");  // T reaches the reply only
  EXPECT_EQ(run(Command::kMetaGet, " t f v"), "VA 3 t95 f7\r\n100\r\n");        // no stale mark, old TTL
  EXPECT_EQ(run(Command::kMetaSet, "", "98"), "HD\r\n");
  EXPECT_EQ(run(Command::kMetaArithmetic, " T35 v"), "VA 2\r\n99\r\n");  // in place: T stays
  EXPECT_EQ(run(Command::kMetaGet, " t"), "HD t35\r\n");
}

TEST_F(MetaRules, AnEmptyCounterIsNonNumericBeforeItsCasIsCompared) {
  run(Command::kMetaSet, "", "");
  EXPECT_EQ(run(Command::kMetaArithmetic, " C1"), "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
  run(Command::kMetaSet, "", "x");
  EXPECT_EQ(run(Command::kMetaArithmetic, " C1"), "EX\r\n");
}

TEST_F(MetaRules, NoCasIsOlderThanZero) {
  run(Command::kMetaSet, "", "x");
  EXPECT_EQ(run(Command::kMetaSet, " I C0", "y"), "EX\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " v"), "VA 1\r\nx\r\n");
}

TEST_F(MetaRules, ALongOpaqueAnswersAnErrorAfterMgAndMaRan) {
  const std::string o = " O" + std::string(32, 'a');
  EXPECT_EQ(run(Command::kMetaGet, " N35" + o), "CLIENT_ERROR opaque token too long\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " v t"), "VA 0 t35\r\n\r\n");  // created; no token went out
  EXPECT_EQ(run(Command::kMetaGet, o + " T95"), "CLIENT_ERROR opaque token too long\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " t"), "HD t35\r\n");  // memcached stopped at the O: no T
  run(Command::kMetaSet, "", "10");
  EXPECT_EQ(run(Command::kMetaArithmetic, o), "CLIENT_ERROR opaque token too long\r\n");
  EXPECT_EQ(item_->data, "11");
  run(Command::kMetaSet, "", "-1");
  EXPECT_EQ(run(Command::kMetaArithmetic, o), "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
}

TEST_F(MetaRules, AnItemMgCreatesThroughABase64KeyKeepsItsKeyPlain) {
  EXPECT_EQ(run(Command::kMetaGet, " b k N35"), "HD kk W\r\n");
}

TEST(MemcachedItemSize, CountsHeaderKeyFlagsAndCrlf) {
  // memcached -I 1m with a 9-byte key takes 1048508 bytes, or 1048504 with flags (measured).
  EXPECT_TRUE(proto::fits_memcached_item(9, 0, 1048508, 1 << 20));
  EXPECT_FALSE(proto::fits_memcached_item(9, 0, 1048509, 1 << 20));
  EXPECT_TRUE(proto::fits_memcached_item(9, 1, 1048504, 1 << 20));
  EXPECT_FALSE(proto::fits_memcached_item(9, 1, 1048505, 1 << 20));
}

TEST_F(MetaRules, StorageModes) {
  EXPECT_EQ(run(Command::kMetaSet, " MA", "x"), "NS\r\n");
  EXPECT_EQ(run(Command::kMetaSet, " ME F5", "ab"), "HD\r\n");
  EXPECT_EQ(run(Command::kMetaSet, " ME", "zz"), "NS\r\n");
  EXPECT_EQ(run(Command::kMetaSet, " MA F9", "c"), "HD\r\n");
  EXPECT_EQ(run(Command::kMetaSet, " MP", "<"), "HD\r\n");
  EXPECT_EQ(run(Command::kMetaGet, " v f"), "VA 4 f5\r\n<abc\r\n");  // append keeps the flags
  EXPECT_EQ(run(Command::kMetaDelete, " q k"), "HD kk\r\n");
  EXPECT_TRUE(last_.suppressible);
  EXPECT_EQ(run(Command::kMetaSet, " MR", "x"), "NS\r\n");
}

TEST_F(MetaRules, ABase64KeyIsAnsweredInBase64) {
  EXPECT_EQ(run(Command::kMetaSet, " b k", "v"), "HD kaw== b\r\n");  // "k" re-encoded
  EXPECT_FALSE(last_.clean);                                  // L1 never holds it: a copy would answer k in plain text
  EXPECT_EQ(run(Command::kMetaGet, " k"), "HD kaw== b\r\n");  // the item's mark, not the request's
  EXPECT_EQ(meta_debug_reply("k", &*item_, kNow, 30).substr(0, 8), "ME aw== ");
}

TEST(MetaTextParser, MsSwallowsItsDataAfterAFlagError) {
  const std::string in = "ms k 3 y\r\nabc\r\nmn\r\n";
  const proto::ParseResult r = proto::parse_text(in, 1 << 20);
  ASSERT_EQ(r.status, proto::ParseStatus::kRequest);
  EXPECT_EQ(r.request.command, Command::kError);
  EXPECT_EQ(r.request.error_text, "CLIENT_ERROR invalid flag");
  EXPECT_EQ(r.consumed + r.swallow, in.size() - 4);
  // A bad length swallows nothing: the data line is parsed as the next command.
  const proto::ParseResult bad = proto::parse_text("ms k abc\r\nabc\r\n", 1 << 20);
  EXPECT_EQ(bad.request.error_text, "CLIENT_ERROR bad command line format");
  EXPECT_EQ(bad.consumed, 10u);
  EXPECT_EQ(bad.swallow, 0u);
  const proto::ParseResult big = proto::parse_text("ms k 2000000 T5\r\n", 1 << 20);
  EXPECT_EQ(big.request.command, Command::kTooLarge);
  EXPECT_EQ(big.request.original, Command::kMetaSet);
  EXPECT_EQ(big.swallow, 2000002u);
}

}  // namespace
}  // namespace rend
