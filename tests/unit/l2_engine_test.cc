// The Engine against a real Store in a temp dir: batches cut into segments keep request order,
// a batch's writes see each other, flush_all and CAS survive a reopen, replies come in rounds;
// execute_inline serves what is in memory and leaves the rest, untouched, to execute(). Also the
// non-blocking pieces the event loop relies on: KeyLocks' try-guard and CasSource::try_next.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <span>
#include <vector>

#include "common/get_reply_limit.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/binary_parser.h"
#include "common/protocol/request_compose.h"
#include "common/protocol/text_parser.h"
#include "l2/cas_source.h"
#include "l2/engine.h"
#include "l2/key_locks.h"
#include "l2/store.h"

namespace rend::l2 {
namespace {

using proto::Request;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/l2-engine-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    open();
  }
  void TearDown() override {
    engine_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void open() {
    engine_.reset();
    store_.reset();
    StoreOptions o;
    o.data_dir = dir_;
    o.max_bytes = 64 << 20;
    o.block_cache_mb = 8;
    const Status st = Store::open(o, store_);
    ASSERT_TRUE(st.is_ok()) << st.message();
    engine_ = std::make_unique<Engine>(*store_, stats_, info_);
  }
  // Makes the kernel forget the table files' cached pages, so reading them needs the device:
  // written back first (DONTNEED skips dirty pages), dropped, and checked with mincore() until
  // none is left (pages still under I/O are skipped too). False where that cannot work (a data
  // dir in RAM) or does not happen within a second.
  bool drop_page_cache() {
    struct statfs fs {};
    if (statfs(dir_.c_str(), &fs) != 0 || fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) return false;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      if (entry.path().extension() != ".sst") continue;
      const int fd = ::open(entry.path().c_str(), O_RDONLY);
      if (fd < 0) return false;
      const size_t size = std::filesystem::file_size(entry.path());
      bool dropped = size == 0;
      for (int attempt = 0; attempt < 100 && !dropped; ++attempt) {
        if (attempt > 0) usleep(10000);
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) break;
        const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        std::vector<unsigned char> resident((size + page - 1) / page);
        dropped = mincore(map, size, resident.data()) == 0 &&
                  std::none_of(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; });
        munmap(map, size);
      }
      ::close(fd);
      if (!dropped) return false;
    }
    return true;
  }
  // Parses every request in `wire` (which must outlive the result).
  static std::vector<Request> parse(const std::string& wire) {
    std::vector<Request> out;
    size_t at = 0;
    while (at < wire.size()) {
      const std::span<const char> in(wire.data() + at, wire.size() - at);
      const proto::ParseResult r = static_cast<uint8_t>(wire[0]) == proto::bin::kRequestMagic
                                       ? proto::parse_binary_request(in, 1 << 20)
                                       : proto::parse_text(in, 1 << 20);
      EXPECT_EQ(r.status, proto::ParseStatus::kRequest);
      if (r.status != proto::ParseStatus::kRequest) break;
      out.push_back(r.request);
      at += r.consumed + r.swallow;
    }
    return out;
  }
  std::string run(const std::string& wire, size_t reply_limit = SIZE_MAX) {
    const std::vector<Request> reqs = parse(wire);
    std::string out;
    size_t next = 0;
    while (next < reqs.size()) next = engine_->execute(reqs, next, out, reply_limit, kNotCancelled);
    return out;
  }
  struct Inline {
    size_t executed;  // requests run on the "loop"
    std::string out;
  };
  Inline run_inline(const std::string& wire, bool writes = true) {
    const std::vector<Request> reqs = parse(wire);
    InlineBudget budget{SIZE_MAX, writes ? SIZE_MAX : 0, writes ? SIZE_MAX : 0};
    Inline r;
    r.executed = engine_->execute_inline(reqs, 0, r.out, SIZE_MAX, budget);
    return r;
  }
  uint64_t stat(L2Counter c) const { return stats_.get(c); }
  static inline const std::atomic<bool> kNotCancelled{false};

  std::string dir_;
  // What rend-l2 runs with by default (1 MiB items, 4 MiB output high-water); open() applies it.
  EngineInfo info_{.max_item_size = 1 << 20, .max_get_reply = max_get_reply_bytes(1 << 20, 4 << 20)};
  L2Stats stats_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, WritesInOneBatchSeeEachOther) {
  EXPECT_EQ(run("set k 1 0 1\r\na\r\nappend k 0 0 1\r\nb\r\nprepend k 0 0 1\r\nc\r\nget k\r\n"
                "add k 0 0 1\r\nx\r\ndelete k\r\ndelete k\r\nadd k 0 0 1\r\nx\r\nget k\r\n"),
            "STORED\r\nSTORED\r\nSTORED\r\nVALUE k 1 3\r\ncab\r\nEND\r\n"
            "NOT_STORED\r\nDELETED\r\nNOT_FOUND\r\nSTORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n");
}

TEST_F(EngineTest, ReadsAndWritesKeepRequestOrder) {
  EXPECT_EQ(run("get k\r\nset k 0 0 1\r\n1\r\nget k\r\nincr k 5\r\nget k\r\ndecr k 10\r\nget k\r\n"),
            "END\r\nSTORED\r\nVALUE k 0 1\r\n1\r\nEND\r\n6\r\nVALUE k 0 1\r\n6\r\nEND\r\n0\r\n"
            "VALUE k 0 1\r\n0\r\nEND\r\n");
}

TEST_F(EngineTest, TextMultiGetAndGat) {
  run("set a 1 0 1\r\nA\r\nset c 3 0 1\r\nC\r\n");
  EXPECT_EQ(run("get a b c a\r\n"), "VALUE a 1 1\r\nA\r\nVALUE c 3 1\r\nC\r\nVALUE a 1 1\r\nA\r\nEND\r\n");
  EXPECT_EQ(run("gat 100 c b\r\n"), "VALUE c 3 1\r\nC\r\nEND\r\n");
  EXPECT_EQ(run("touch b 10\r\ntouch a 10\r\n"), "NOT_FOUND\r\nTOUCHED\r\n");
}

TEST_F(EngineTest, ExpiredItemsAreInvisible) {
  EXPECT_EQ(run("set k 0 -1 1\r\nv\r\nget k\r\nadd k 0 0 1\r\nw\r\nget k\r\n"),
            "STORED\r\nEND\r\nSTORED\r\nVALUE k 0 1\r\nw\r\nEND\r\n");
  EXPECT_EQ(stats_.get(L2Counter::get_expired), 1u);
}

TEST_F(EngineTest, AWriteThatExpiresAnItemHidesItFromTheRestOfItsSegment) {
  // One segment (a pipeline of writes): a touch, gat or set with a negative or long-past expiry
  // ends the item for every later request of the batch, as memcached runs them one by one.
  EXPECT_EQ(run("set k 0 0 1\r\nv\r\ngat -1 k k\r\nadd k 0 0 1\r\nw\r\ngat 2592001 k k\r\nset k 0 -1 1\r\nx\r\n"
                "add k 0 0 1\r\ny\r\nget k\r\n"),
            "STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\nSTORED\r\nVALUE k 0 1\r\nw\r\nEND\r\nSTORED\r\nSTORED\r\n"
            "VALUE k 0 1\r\ny\r\nEND\r\n");
  // The binary protocol has no negative TTL: a touch to an absolute time long past, then a gat.
  auto touch = [](uint8_t opcode, uint32_t exptime) {
    Request r;
    r.protocol = proto::Protocol::kBinary;
    r.command = opcode == proto::bin::kTouch ? proto::Command::kTouch : proto::Command::kGat;
    r.opcode = opcode;
    r.key = "t";
    r.exptime = exptime;
    std::string out;
    proto::compose_binary_request(r, out);
    return out;
  };
  run("set t 0 0 1\r\nv\r\n");
  const std::string out = run(touch(proto::bin::kTouch, 2592001) + touch(proto::bin::kGat, 0));
  ASSERT_GE(out.size(), 48u);
  EXPECT_EQ(proto::bin::load16(out.data() + 6), proto::bin::kSuccess);  // the touch found it
  const size_t second = 24 + proto::bin::load32(out.data() + 8);
  ASSERT_GE(out.size(), second + 24);
  EXPECT_EQ(proto::bin::load16(out.data() + second + 6), proto::bin::kKeyNotFound);  // and ended it
}

TEST_F(EngineTest, FlushAllIsABarrierAndSurvivesReopen) {
  EXPECT_EQ(run("set a 0 0 1\r\n1\r\nflush_all\r\nget a\r\nset b 0 0 1\r\n2\r\nget b\r\n"),
            "STORED\r\nOK\r\nEND\r\nSTORED\r\nVALUE b 0 1\r\n2\r\nEND\r\n");
  open();
  EXPECT_EQ(run("get a b\r\n"), "VALUE b 0 1\r\n2\r\nEND\r\n");
}

TEST_F(EngineTest, CasUniquesGrowAcrossReopen) {
  auto cas_of = [&](const std::string& key) {
    const std::string out = run("gets " + key + "\r\n");
    const size_t nl = out.find("\r\n");
    return std::stoull(out.substr(out.rfind(' ', nl) + 1, nl));
  };
  run("set a 0 0 1\r\n1\r\n");
  const uint64_t first = cas_of("a");
  run("set a 0 0 1\r\n1\r\n");
  const uint64_t second = cas_of("a");
  EXPECT_GT(second, first);
  open();
  run("set b 0 0 1\r\n1\r\n");
  EXPECT_GT(cas_of("b"), second);
  EXPECT_EQ(cas_of("a"), second) << "a stored item keeps its CAS";
  EXPECT_EQ(run("cas a 0 0 1 " + std::to_string(second) + "\r\nz\r\n"), "STORED\r\n");
}

TEST_F(EngineTest, BinaryQuietBatchAnswersOnlyHitsThenNoop) {
  std::string wire;
  auto packet = [&](uint8_t op, std::string_view key, std::string_view extras = {}, std::string_view value = {}) {
    proto::bin::Header h;
    h.magic = proto::bin::kRequestMagic;
    h.opcode = op;
    h.key_length = static_cast<uint16_t>(key.size());
    h.extras_length = static_cast<uint8_t>(extras.size());
    h.body_length = static_cast<uint32_t>(extras.size() + key.size() + value.size());
    const size_t at = wire.size();
    wire.resize(at + proto::bin::kHeaderSize);
    proto::bin::encode_header(h, wire.data() + at);
    wire.append(extras).append(key).append(value);
  };
  const std::string set_extras(8, '\0');
  packet(proto::bin::kSetQ, "hit", set_extras, "v");
  packet(proto::bin::kGetKQ, "miss");
  packet(proto::bin::kGetKQ, "hit");
  packet(proto::bin::kNoop, "");
  const std::string out = run(wire);
  proto::BinaryResponse r;
  size_t used = 0;
  ASSERT_EQ(proto::parse_binary_response(std::span<const char>(out.data(), out.size()), 1 << 20, r, used),
            proto::ResponseParse::kOk);
  EXPECT_EQ(r.header.opcode, proto::bin::kGetKQ);
  EXPECT_EQ(r.key, "hit");
  const std::string rest = out.substr(used);
  ASSERT_EQ(proto::parse_binary_response(std::span<const char>(rest.data(), rest.size()), 1 << 20, r, used),
            proto::ResponseParse::kOk);
  EXPECT_EQ(r.header.opcode, proto::bin::kNoop);
  EXPECT_EQ(used, rest.size());
}

// The answers to binary requests: status and data type of each.
struct Answer {
  uint16_t status;
  uint8_t data_type;
};

TEST_F(EngineTest, ATrackedWriteSoonAfterAnotherProcesssAccessIsFlagged) {
  namespace bin = proto::bin;
  using proto::Command;
  // Runs `reqs` (binary, each tracked unless `tracked` is false) as `who`, on a worker or on the
  // loop; returns each answer.
  auto run_as = [&](std::vector<Request> reqs, uint32_t who, bool on_loop = false, bool tracked = true) {
    std::string wire;
    for (Request& r : reqs) {
      r.protocol = proto::Protocol::kBinary;
      proto::compose_binary_request(r, wire);
    }
    std::vector<Request> parsed = parse(wire);
    for (Request& r : parsed) r.track_races = tracked;
    std::string out;
    if (on_loop) {
      InlineBudget budget{SIZE_MAX, SIZE_MAX, SIZE_MAX};
      EXPECT_EQ(engine_->execute_inline(parsed, 0, out, SIZE_MAX, budget, who), parsed.size());
    } else {
      engine_->execute(parsed, 0, out, SIZE_MAX, kNotCancelled, who);
    }
    std::vector<Answer> answers;
    size_t at = 0;
    while (at < out.size()) {
      proto::BinaryResponse resp;
      size_t used = 0;
      if (proto::parse_binary_response(std::span<const char>(out.data() + at, out.size() - at), 1 << 20, resp, used) !=
          proto::ResponseParse::kOk) {
        ADD_FAILURE() << "unparsable answer";
        break;
      }
      answers.push_back({resp.status(), resp.header.data_type});
      at += used;
    }
    return answers;
  };
  auto req = [](Command c, uint8_t opcode, std::string_view key) {
    Request r;
    r.command = c;
    r.opcode = opcode;
    r.key = key;
    r.value = "v";
    return r;
  };
  const Request set_k = req(Command::kSet, bin::kSet, "k");
  EXPECT_EQ(run_as({set_k}, 10)[0].data_type, 0);
  EXPECT_EQ(run_as({set_k}, 10)[0].data_type, 0) << "one process orders its own writes";
  EXPECT_EQ(run_as({set_k}, 20)[0].data_type, bin::kDataTypeRacedWrite);
  EXPECT_EQ(run_as({req(Command::kDelete, bin::kDelete, "k")}, 10)[0].data_type, bin::kDataTypeRacedWrite)
      << "a delete races too";
  const Answer refused = run_as({req(Command::kReplace, bin::kReplace, "k")}, 20)[0];
  EXPECT_EQ(refused.status, bin::kKeyNotFound);
  EXPECT_EQ(refused.data_type, 0) << "a write that changed nothing is not flagged";

  // In one segment, after other answers and a quiet write (no answer): each flag on its own answer.
  Request quiet = req(Command::kSet, bin::kSetQ, "q");
  quiet.quiet = true;
  const std::vector<Answer> seg =
      run_as({req(Command::kSet, bin::kSet, "a"), quiet, req(Command::kSet, bin::kSet, "k")}, 30);
  ASSERT_EQ(seg.size(), 2u);
  EXPECT_EQ(seg[0].data_type, 0);
  EXPECT_EQ(seg[1].data_type, bin::kDataTypeRacedWrite) << "k was written by 10, then 20";

  // A backfilling read counts; an untracked access neither counts nor is flagged.
  run_as({req(Command::kGetE, bin::kGetE, "b")}, 40);
  EXPECT_EQ(run_as({req(Command::kSet, bin::kSet, "b")}, 50)[0].data_type, bin::kDataTypeRacedWrite);
  EXPECT_EQ(run_as({req(Command::kSet, bin::kSet, "b")}, 60, false, false)[0].data_type, 0);
  run_as({req(Command::kSet, bin::kSet, "u")}, 60, false, false);
  EXPECT_EQ(run_as({req(Command::kSet, bin::kSet, "u")}, 70)[0].data_type, 0);

  EXPECT_EQ(run_as({req(Command::kSet, bin::kSet, "k2")}, 10, true)[0].data_type, 0);
  EXPECT_EQ(run_as({req(Command::kSet, bin::kSet, "k2")}, 20, true)[0].data_type, bin::kDataTypeRacedWrite)
      << "on the loop as on a worker";
  EXPECT_EQ(stat(L2Counter::l2_raced_writes), 5u);
}

TEST_F(EngineTest, LargeRepliesComeInRoundsWithTheSameBytes) {
  const std::string value(100 * 1024, 'x');
  std::string wire;
  for (int i = 0; i < 20; ++i)
    wire += "set k" + std::to_string(i) + " 0 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\n";
  run(wire);
  std::string gets;
  for (int i = 0; i < 20; ++i) gets += "get k" + std::to_string(i) + "\r\n";
  const std::vector<Request> reqs = parse(gets);
  std::string out;
  size_t next = 0;
  int rounds = 0;
  while (next < reqs.size()) {
    const size_t before = out.size();
    next = engine_->execute(reqs, next, out, before + 256 * 1024, kNotCancelled);
    ++rounds;
  }
  EXPECT_GT(rounds, 1) << "a reply limit splits the work";
  EXPECT_EQ(out, run(gets));
}

TEST_F(EngineTest, ACancelledBatchExecutesNothingMore) {
  // Its connection closed: the worker that sent it may have given up and told its client so.
  const std::vector<Request> reqs = parse("set a 0 0 1\r\n1\r\nget a\r\nset b 0 0 1\r\n2\r\n");
  std::string out;
  const std::atomic<bool> cancelled{true};
  EXPECT_EQ(engine_->execute(reqs, 0, out, SIZE_MAX, cancelled), 0u);
  EXPECT_EQ(out, "");
  EXPECT_EQ(run("get a\r\nget b\r\n"), "END\r\nEND\r\n") << "nothing was written";
}

TEST_F(EngineTest, StatsReportRocksDbFigures) {
  const std::string out = run("stats\r\n");
  for (const char* name : {"STAT pid ", "STAT cmd_get ", "STAT curr_items ", "STAT rocksdb.estimate-live-data-size ",
                           "STAT rocksdb.total-sst-files-size ", "STAT rocksdb.estimate-pending-compaction-bytes ",
                           "STAT rocksdb.stall.micros ", "STAT rocksdb.block.cache.hit ",
                           "STAT rocksdb.block.cache.miss ", "STAT l2_data_dir_bytes "}) {
    EXPECT_NE(out.find(name), std::string::npos) << name;
  }
  EXPECT_TRUE(out.ends_with("END\r\n"));
  EXPECT_EQ(run("stats reset\r\nstats nonsense\r\n"), "RESET\r\nERROR\r\n");
}

TEST_F(EngineTest, InlineReadsServeWhatIsInMemoryAndLeaveTheDiskToWorkers) {
  std::string wire;
  for (int i = 0; i < 3000; ++i) wire += "set k" + std::to_string(i) + " 0 0 3\r\nv" + std::to_string(i % 10) + "x\r\n";
  run(wire);
  Inline r = run_inline("get k1234\r\n");
  EXPECT_EQ(r.executed, 1u) << "in the memtable";
  EXPECT_EQ(r.out, "VALUE k1234 0 3\r\nv4x\r\nEND\r\n");
  EXPECT_EQ(stat(L2Counter::l2_inline_reads), 1u);

  open();  // the WAL is replayed into a table file; the new block cache is empty
  struct statfs fs {};
  ASSERT_EQ(statfs(dir_.c_str(), &fs), 0);
  if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) GTEST_SKIP() << "the data dir is in RAM: no read waits";
  // Something can bring a page back between the drop and the read (a background job, readahead
  // started by a refused read): an inline answer must then be right, and a few tries, each with
  // keys of blocks not yet read (an answered read puts its block in the block cache), find a read
  // that has to wait. A loop that blocked on the disk would answer every time.
  auto hit = [](int i) { return "VALUE k" + std::to_string(i) + " 0 3\r\nv" + std::to_string(i % 10) + "x\r\n"; };
  const uint64_t gets = stat(L2Counter::cmd_get);
  const uint64_t fallbacks = stat(L2Counter::l2_inline_fallbacks);
  int key = 0;
  for (int k : {1234, 1567, 1890, 2345, 2678}) {
    ASSERT_TRUE(drop_page_cache()) << "the table file's pages stayed in the page cache";
    r = run_inline("get k" + std::to_string(k) + "\r\n");
    if (r.executed == 0) {
      key = k;
      break;
    }
    EXPECT_EQ(r.out, hit(k) + "END\r\n") << "answered from memory";
  }
  ASSERT_NE(key, 0) << "no read of a block dropped from the page cache was left to a worker";
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(stat(L2Counter::cmd_get) - gets, stat(L2Counter::l2_inline_reads) - 1)
      << "an abandoned attempt counts nothing";
  EXPECT_EQ(stat(L2Counter::l2_inline_fallbacks), fallbacks + 1);
  const std::string get_key = "get k" + std::to_string(key) + "\r\n";
  EXPECT_EQ(run(get_key), hit(key) + "END\r\n");
  EXPECT_EQ(stat(L2Counter::l2_offloaded_reads), 1u);

  const uint64_t inline_reads = stat(L2Counter::l2_inline_reads);
  r = run_inline(get_key);
  EXPECT_EQ(r.executed, 1u) << "the worker's read put its block in the block cache";
  EXPECT_EQ(r.out, hit(key) + "END\r\n");
  EXPECT_EQ(stat(L2Counter::l2_inline_reads), inline_reads + 1);

  // A multi-get is one segment: one key not in memory sends all of it to a worker.
  bool refused = false;
  for (int other : {2, 3, 4, 5, 6}) {
    ASSERT_TRUE(drop_page_cache());
    r = run_inline("get k" + std::to_string(key) + " k" + std::to_string(other) + "\r\n");
    if (r.executed == 0) {
      refused = true;
      break;
    }
    EXPECT_EQ(r.out, hit(key) + hit(other) + "END\r\n");
  }
  EXPECT_TRUE(refused) << "a multi-get with a key only on disk was answered on the loop every time";
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(stat(L2Counter::l2_inline_fallbacks), fallbacks + 2);

  // A key that is nowhere: the table's bloom filter (in memory) says so.
  r = run_inline("get nothere\r\n");
  EXPECT_EQ(r.executed, 1u);
  EXPECT_EQ(r.out, "END\r\n");
}

// The newest version of a key may sit in a table file the page cache dropped while an older
// version sits in one it holds: the loop must not answer with the older one.
TEST_F(EngineTest, InlineReadNeverAnswersWithAnOlderVersionFromMemory) {
  run("set k 0 0 14\r\nOLD-VALUE-1111\r\n");
  open();  // the WAL becomes a table file holding the old version
  run("set k 0 0 14\r\nNEW-VALUE-2222\r\n");
  open();  // and a newer table file with the new one
  struct statfs fs {};
  ASSERT_EQ(statfs(dir_.c_str(), &fs), 0);
  if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) GTEST_SKIP() << "the data dir is in RAM: no read waits";
  auto contents = [](const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  std::vector<std::filesystem::path> old_files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    if (entry.path().extension() == ".sst" && contents(entry.path()).find("OLD-VALUE-1111") != std::string::npos) {
      old_files.push_back(entry.path());
    }
  }
  ASSERT_EQ(old_files.size(), 1u) << "each version in its own table file";
  // Drop every table file from the page cache, then bring back only the one with the old version.
  ASSERT_TRUE(drop_page_cache());
  ASSERT_NE(contents(old_files[0]).find("OLD-VALUE-1111"), std::string::npos);

  // The refused read starts the kernel reading the block, and on a busy machine it may be back
  // before RocksDB asks again: the loop may then answer, but only with the newest version.
  const std::string newest = "VALUE k 0 14\r\nNEW-VALUE-2222\r\nEND\r\n";
  Inline r = run_inline("get k\r\n");
  if (r.executed == 0) {
    EXPECT_EQ(r.out, "") << "left to a worker";
  } else {
    EXPECT_EQ(r.out, newest) << "answered from memory, so with the newest version only";
  }
  EXPECT_EQ(run("get k\r\n"), newest);
}

TEST_F(EngineTest, InlineRunsSegmentsInOrderUntilOneNeedsAWorker) {
  Inline r = run_inline("set a 0 0 1\r\n1\r\nincr a 5\r\nget a\r\nversion\r\nstats\r\nget a\r\n");
  EXPECT_EQ(r.executed, 4u) << "stats (a directory walk) never runs on the loop";
  EXPECT_TRUE(r.out.starts_with("STORED\r\n6\r\nVALUE a 0 1\r\n6\r\nEND\r\nVERSION ")) << r.out;
  EXPECT_EQ(stat(L2Counter::l2_inline_writes), 2u);

  r = run_inline("get a\r\nset b 0 0 1\r\n2\r\nget b\r\n", /*writes=*/false);
  EXPECT_EQ(r.executed, 1u) << "reads only: stops at the first write";
  EXPECT_EQ(r.out, "VALUE a 0 1\r\n6\r\nEND\r\n");

  // A write segment that would put more than kInlineWriteBytes in RocksDB: nothing happens.
  const uint64_t sets = stat(L2Counter::cmd_set);
  const std::string big(Engine::kInlineWriteBytes + 1, 'b');
  r = run_inline("set big 0 0 " + std::to_string(big.size()) + "\r\n" + big + "\r\n");
  EXPECT_EQ(r.executed, 0u);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(stat(L2Counter::cmd_set), sets);
  EXPECT_EQ(stat(L2Counter::l2_inline_fallbacks), 1u);
  EXPECT_EQ(run("get big\r\n"), "END\r\n") << "not written";
  EXPECT_EQ(run("set big 0 0 " + std::to_string(big.size()) + "\r\n" + big + "\r\n"), "STORED\r\n");
  EXPECT_EQ(stat(L2Counter::l2_offloaded_writes), 1u);

  // An append that would make a big item is judged by what it writes, not by its request.
  r = run_inline("append big 0 0 1\r\nc\r\n");
  EXPECT_EQ(r.executed, 0u);
  EXPECT_EQ(run("append big 0 0 1\r\nc\r\n"), "STORED\r\n");
}

TEST_F(EngineTest, InlineSpendsItsBudgetInWholeSegments) {
  run("set a 0 0 1\r\n1\r\n");
  std::string wire;
  for (int i = 0; i < 300; ++i) wire += "get a\r\n";
  wire += "get a a a\r\nset a 0 0 1\r\n2\r\nset b 0 0 1\r\n3\r\nget a\r\n";
  const std::vector<Request> reqs = parse(wire);
  std::string out;
  InlineBudget budget{Engine::kSegmentKeys - 1, 100, SIZE_MAX};
  EXPECT_EQ(engine_->execute_inline(reqs, 0, out, SIZE_MAX, budget), 0u) << "a segment too big for the budget";
  EXPECT_EQ(budget.read_keys, Engine::kSegmentKeys - 1);
  budget.read_keys = Engine::kSegmentKeys + 10;
  size_t next = engine_->execute_inline(reqs, 0, out, SIZE_MAX, budget);
  EXPECT_EQ(next, Engine::kSegmentKeys) << "one whole segment";
  EXPECT_EQ(budget.read_keys, 10u);
  budget = {SIZE_MAX, 1};
  next = engine_->execute_inline(reqs, next, out, SIZE_MAX, budget);
  EXPECT_EQ(next, 301u) << "the writes need 2 keys of write budget";
  std::string expected;
  for (int i = 0; i < 300; ++i) expected += "VALUE a 0 1\r\n1\r\nEND\r\n";
  expected += "VALUE a 0 1\r\n1\r\nVALUE a 0 1\r\n1\r\nVALUE a 0 1\r\n1\r\nEND\r\n";
  EXPECT_EQ(out, expected);
  budget.write_keys = 2;
  budget.write_bytes = 1;
  EXPECT_EQ(engine_->execute_inline(reqs, next, out, SIZE_MAX, budget), next) << "the values are 2 bytes";
  budget.write_bytes = 2;
  EXPECT_EQ(engine_->execute_inline(reqs, next, out, SIZE_MAX, budget), reqs.size());
  EXPECT_EQ(budget.write_keys, 0u);
  EXPECT_EQ(budget.write_bytes, 0u);
  EXPECT_EQ(out, expected + "STORED\r\nSTORED\r\nVALUE a 0 1\r\n2\r\nEND\r\n");
}

// memcached -I 1m: a 600 KiB item plus a 600 KiB append is NOT_STORED, and the item stays.
TEST_F(EngineTest, AppendOrPrependPastTheItemLimitIsNotStored) {
  const std::string part(600 * 1024, 'p');
  const std::string size = std::to_string(part.size());
  EXPECT_EQ(run("set k 0 0 " + size + "\r\n" + part + "\r\nappend k 0 0 " + size + "\r\n" + part +
                "\r\nprepend k 0 0 " + size + "\r\n" + part + "\r\n"),
            "STORED\r\nNOT_STORED\r\nNOT_STORED\r\n");
  EXPECT_EQ(run("get k\r\n"), "VALUE k 0 " + size + "\r\n" + part + "\r\nEND\r\n");
  // memcached's item limit counts its header (56 bytes with the CAS), the key and its NUL, the CRLF.
  const std::string rest((1 << 20) - 59 - 1 - part.size(), 'r');
  EXPECT_EQ(run("append k 0 0 " + std::to_string(rest.size() + 1) + "\r\n" + rest + "r\r\n"), "NOT_STORED\r\n")
      << "one byte past memcached's limit";
  EXPECT_EQ(run("append k 0 0 " + std::to_string(rest.size()) + "\r\n" + rest + "\r\n"), "STORED\r\n")
      << "up to the limit itself, as a set";
}

// A text get/gets/gat/gats whose reply would pass the cap answers memcached's out-of-memory line
// and nothing else; the requests around it are unaffected.
TEST_F(EngineTest, TextGetPastTheReplyCapFailsWhole) {
  info_.max_get_reply = 10000;
  open();
  const std::string value(3000, 'v');
  run("set a 0 0 3000\r\n" + value + "\r\n");
  const std::string hit = "VALUE a 0 3000\r\n" + value + "\r\n";
  EXPECT_EQ(run("get a a a\r\n"), hit + hit + hit + "END\r\n");
  const std::string too_large = "SERVER_ERROR out of memory writing get response\r\n";
  EXPECT_EQ(run("get a\r\nget a a a a\r\ngets a b a a a\r\nget a\r\n"),
            hit + "END\r\n" + too_large + too_large + hit + "END\r\n");
  EXPECT_EQ(run("gat 0 a a a a\r\nget a\r\n"), too_large + hit + "END\r\n");
  EXPECT_EQ(run_inline("get a a a a\r\n").out, too_large) << "the same on the loop";

  // A gat past the cap touches nothing: these would expire at once.
  std::string wire;
  std::string keys;
  for (int i = 0; i < 5; ++i) {
    wire += "set d" + std::to_string(i) + " 0 0 3000\r\n" + value + "\r\n";
    keys += " d" + std::to_string(i);
  }
  run(wire);
  EXPECT_EQ(run("gat -1" + keys + "\r\n"), too_large) << "refused before all its distinct keys were read";
  EXPECT_EQ(run("gats -1 d0 d0 d0 d0\r\n"), too_large) << "refused on the reply its repeated key would make";
  EXPECT_EQ(run("get d0 d4\r\n"), "VALUE d0 0 3000\r\n" + value + "\r\nVALUE d4 0 3000\r\n" + value + "\r\nEND\r\n");
}

// A text multi-get is read kSegmentKeys keys at a time on a worker: the reply is the same.
TEST_F(EngineTest, TextMultiGetAndGatOfManyKeysReadInChunks) {
  std::string wire;
  std::string keys;
  std::string expected;
  for (size_t i = 0; i < 3 * Engine::kSegmentKeys + 7; ++i) {
    const std::string k = "k" + std::to_string(i);
    keys += " " + k;
    if (i % 3 == 0) continue;  // a miss
    wire += "set " + k + " 0 0 " + std::to_string(k.size()) + "\r\n" + k + "\r\n";
    expected += "VALUE " + k + " 0 " + std::to_string(k.size()) + "\r\n" + k + "\r\n";
  }
  run(wire);
  EXPECT_EQ(run("get" + keys + "\r\nget k1\r\n"), expected + "END\r\nVALUE k1 0 2\r\nk1\r\nEND\r\n");
  EXPECT_EQ(run("gat 0" + keys + "\r\n"), expected + "END\r\n");
}

// The process may not grow a file past RLIMIT_FSIZE (SIGXFSZ ignored: write() fails with EFBIG),
// which makes RocksDB's next WAL append fail: a real write error, without a fault-injecting Env.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    saved_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, saved_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  sighandler_t saved_handler_ = SIG_DFL;
};

TEST_F(EngineTest, FailedWriteBatchFailsEveryWriteOfTheSegment) {
  EXPECT_EQ(run("set x 0 0 1\r\n1\r\n"), "STORED\r\n");
  uintmax_t largest = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    if (entry.is_regular_file()) largest = std::max(largest, entry.file_size());
  }
  const std::string value(256 * 1024, 'v');
  std::string out;
  {
    FileSizeLimit limit(largest + 64 * 1024);
    // The add was decided against the set's unwritten item: its NOT_STORED would be a lie (k may
    // not exist), and so would incr's NOT_FOUND and the delete's DELETED of x... every write fails.
    out = run("set k 0 0 " + std::to_string(value.size()) + "\r\n" + value +
              "\r\nadd k 0 0 1\r\nw\r\nincr nothere 1\r\ndelete x\r\nversion\r\n");
  }
  EXPECT_TRUE(
      out.starts_with("SERVER_ERROR write error\r\nSERVER_ERROR write error\r\nSERVER_ERROR write error\r\n"
                      "SERVER_ERROR write error\r\nVERSION "))
      << out.substr(0, 200);
  EXPECT_EQ(stat(L2Counter::l2_write_errors), 4u);  // every write request of the segment
}

// A write segment that waited for its stripe judges the item as it is once the stripe is its own:
// a flush_all completed meanwhile hides it (memcached: incr after flush_all is NOT_FOUND).
TEST_F(EngineTest, AWriteThatWaitedForItsStripeSeesAFlushThatRanMeanwhile) {
  EXPECT_EQ(run("set k 0 0 1\r\n1\r\n"), "STORED\r\n");
  std::future<std::string> incr;
  {
    KeyLocks::Guard writer(engine_->key_locks(), {engine_->key_locks().stripe("k")});
    incr = std::async(std::launch::async, [&] { return run("incr k 1\r\n"); });
    EXPECT_EQ(incr.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout) << "waits for the stripe";
    // The Store's own flush_all (the Engine's would wait for this stripe, too): as if it ran
    // between the incr's arrival and its turn.
    ASSERT_TRUE(store_->flush_all(static_cast<uint32_t>(time(nullptr)), 0).is_ok());
  }
  EXPECT_EQ(incr.get(), "NOT_FOUND\r\n");
  EXPECT_EQ(run("get k\r\n"), "END\r\n") << "the flushed item does not come back incremented";
}

// flush_all waits for a write segment in progress (a held stripe): its cutoff can never fall
// between a write's read and its write, where the write would get a CAS above the cutoff and
// bring a value derived from the flushed item back.
TEST_F(EngineTest, FlushAllWaitsForWritesInProgress) {
  EXPECT_EQ(run("set k 0 0 1\r\n1\r\n"), "STORED\r\n");
  std::future<std::string> flush;
  {
    KeyLocks::Guard writer(engine_->key_locks(), {engine_->key_locks().stripe("k")});
    flush = std::async(std::launch::async, [&] { return run("flush_all\r\n"); });
    EXPECT_EQ(flush.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
        << "flush_all went ahead while a writer held a stripe";
  }
  EXPECT_EQ(flush.get(), "OK\r\n");
  EXPECT_EQ(run("get k\r\n"), "END\r\n");
  EXPECT_EQ(run("set k 0 0 1\r\n2\r\nincr k 1\r\n"), "STORED\r\n3\r\n") << "writers go on after it";
}

TEST(KeyLocksTest, TryGuardTakesAllStripesOrNone) {
  KeyLocks locks(16);
  auto try_on_other_thread = [&](std::vector<size_t> stripes) {
    return std::async(std::launch::async,
                      [&locks, stripes] {
                        KeyLocks::Guard g(locks, stripes, KeyLocks::Guard::Wait::kTry);
                        return g.locked();
                      })
        .get();
  };
  {
    KeyLocks::Guard held(locks, {3});
    EXPECT_FALSE(try_on_other_thread({1, 3, 5}));
    EXPECT_TRUE(try_on_other_thread({5, 1})) << "a failed try left nothing locked";
  }
  EXPECT_TRUE(try_on_other_thread({1, 3, 5}));
  KeyLocks::Guard again(locks, {1, 3, 5}, KeyLocks::Guard::Wait::kTry);
  EXPECT_TRUE(again.locked()) << "and a successful one released everything";
}

TEST(CasSourceTest, TryNextNeverRenewsTheLease) {
  int persisted = 0;
  CasSource cas(1000, [&](uint64_t) {
    ++persisted;
    return true;
  });
  ASSERT_TRUE(cas.start());
  uint64_t last = 0;
  for (uint64_t i = 0; i < CasSource::kLease; ++i) {
    const std::optional<uint64_t> v = cas.try_next();
    ASSERT_TRUE(v.has_value()) << i;
    ASSERT_GT(*v, last);
    last = *v;
  }
  EXPECT_FALSE(cas.try_next().has_value()) << "the lease is used up";
  EXPECT_EQ(persisted, 1);
  EXPECT_EQ(cas.next(), last + 1) << "next() renews it, skipping nothing";
  EXPECT_EQ(persisted, 2);
  EXPECT_EQ(cas.try_next(), last + 2);
}

}  // namespace
}  // namespace rend::l2
