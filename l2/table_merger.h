// Keeps the number of table files small, so a read probes few of them.
//
// rend-l2 evicts with RocksDB's FIFO compaction: every table file stays in L0 and the oldest
// files are deleted when the budget is full. A point read checks every L0 file, newest first,
// until one holds the key: a bloom filter probe per file (a cache miss each once the filters
// outgrow the CPU caches) and, 1% of the time per file, a wasted data-block read. FIFO's own
// merging ("allow_compaction") never merges files of one memtable each: it only merges when
// that costs under 1.1 memtable of writing per file removed, which 4..12 equal files never do.
// So the file count grew with the budget, budget / memtable size: 54 files at 1 GiB, 16 000 at
// 1 TiB.
//
// The TableMerger merges in tiers instead: whenever `fanin` files next to each other in age
// have similar sizes (the largest at most `max_ratio` times the smallest), it merges them into
// one file in L0 (CompactFiles), as long as the result stays under `max_output`; near that cap,
// two or three files that fit are merged too, and among old "settled" files any neighbours that
// fit together (see pick_merge). Memtable-sized files become files of 4 memtables, four of those
// one of 16, and so on up to max_output. The file count is then about sst_budget / max_output +
// (fanin - 1) per tier, each byte is rewritten once per tier (log4(max_output / memtable)
// times), and a merge keeps the age order FIFO relies on: its inputs are adjacent, so its output
// takes their place. Every merge also runs the expiry compaction filter over its inputs.
//
// Runs on its own thread, woken by RocksDB after every flush and compaction (the listener) and
// once at start-up.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/listener.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rend::l2 {

struct MergePolicy {
  size_t fanin = 4;
  double max_ratio = 2.5;
  uint64_t max_output = 0;  // bytes; no merge whose inputs add up to more
};

struct TableFile {
  std::string name;
  uint64_t size = 0;
  bool busy = false;  // being compacted (a merge, or FIFO deleting it)
};

struct Window {
  size_t first = 0;
  size_t count = 0;
  bool operator==(const Window&) const = default;
};

// The files [first, first + count) of `newest_first` to merge, or nullopt: `fanin` adjacent
// files, none busy, of similar sizes; or, where `fanin` of them would pass max_output, the two
// or more that fit (the last tier: flushes of two memtables at once make such sizes). Files
// older than the newest one of at least max_output / 2 are settled (new data only ever arrives
// in front): there any two or more neighbours that fit under max_output merge, so uneven
// leftovers cannot pile up. Prefers the newest eligible window, which is also the smallest tier.
// Pure, unit tested.
std::optional<Window> pick_merge(const std::vector<TableFile>& newest_first, const MergePolicy& policy);

class TableMerger {
 public:
  explicit TableMerger(MergePolicy policy);
  TableMerger(const TableMerger&) = delete;
  TableMerger& operator=(const TableMerger&) = delete;
  ~TableMerger();

  // Give this to RocksDB (DBOptions::listeners) before opening the database.
  std::shared_ptr<rocksdb::EventListener> listener();
  // Starts merging files of `cf`; call once the database is open.
  void start(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf);
  // Waits for a running merge to end (or be cancelled) and stops; call before closing the DB.
  void stop();

  uint64_t merges() const { return merges_.load(std::memory_order_relaxed); }
  uint64_t merged_bytes() const { return merged_bytes_.load(std::memory_order_relaxed); }

 private:
  class Listener;
  void wake();
  void run();
  // One merge if there is one to do; false when there is none (or it failed).
  bool merge_once();

  const MergePolicy policy_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* cf_ = nullptr;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool pending_ = false;
  bool stopping_ = false;
  std::thread thread_;
  std::atomic<uint64_t> merges_{0};
  std::atomic<uint64_t> merged_bytes_{0};
};

}  // namespace rend::l2
