// rend-l2's RocksDB database: the only code that knows RocksDB's API.
//
// Two column families: "default" holds the items (FIFO compaction bounded by the disk budget,
// the expiry compaction filter, bloom filters, an LRU block cache), "meta" holds rend-l2's own
// state (the flush_all cutoffs and the CAS lease), with ordinary level compaction so FIFO can
// never evict it.
//
// Lifetime: open() returns a ready Store or an error; the destructor (or close()) closes the
// database cleanly. When the disk is full or read-only at start, the store opens read-only
// (reads served, writes refused) and reopens itself for writing once the disk can take writes;
// a reopen waits for every Pin, so values read under one stay valid while it is held. All methods but close() are
// thread-safe. They may block on disk I/O and are called from the worker threads, except the two made for the event
// loop: multi_get with `no_wait` (memtables, block cache and OS page cache, never waiting for the device) and
// try_write_now (gives up instead of stalling or queueing behind another writer).
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/statistics.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"
#include "l2/budget.h"
#include "l2/cas_source.h"
#include "l2/flush_state.h"
#include "l2/nowait_file_system.h"
#include "l2/table_merger.h"
#include "l2/write_health.h"

namespace rend::l2 {

struct StoreOptions {
  std::string data_dir;
  uint64_t max_bytes = 0;
  bool wal = true;
  int block_cache_mb = 0;
};

using Report = std::vector<std::pair<std::string, std::string>>;

// The figures rend-l2 also publishes to the supervisor's metrics.
struct StoreFigures {
  uint64_t live_data_bytes = 0;
  uint64_t sst_files_bytes = 0;
  uint64_t pending_compaction_bytes = 0;
  uint64_t write_stall_micros = 0;
  uint64_t block_cache_hits = 0;
  uint64_t block_cache_misses = 0;
  uint64_t disk_bytes = 0;
  uint64_t keys_estimate = 0;
};

class Store {
 public:
  // A store RocksDB finds damaged (a corrupt or missing file, an unreadable flush state or CAS
  // lease) is moved aside to `<data_dir>.damaged` (replacing an older one) and an empty store is
  // opened instead, as a cache may: `moved_aside` then says why. Other failures (another process
  // holds the lock, no permission) are returned, and nothing is moved.
  static Status open(const StoreOptions& options, std::unique_ptr<Store>& out, std::string* moved_aside = nullptr);
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store();

  // Keeps the database open: multi_get needs one, held while its values are used (they point
  // into the database's blocks). try_pin() fails (owns_lock() false) while a reopen is under way.
  using Pin = std::shared_lock<std::shared_mutex>;
  Pin pin() const { return Pin(db_mutex_); }
  Pin try_pin() const { return Pin(db_mutex_, std::try_to_lock); }

  // Point reads of `keys` (duplicates allowed); statuses[i].IsNotFound() on a miss.
  //
  // `no_wait` (the event loop): served only from memory (memtables, block cache, OS page cache;
  // see nowait_file_system.h). Returns false, with nothing to use, when some key would need the
  // disk.
  bool multi_get(const Pin& pin, const std::vector<rocksdb::Slice>& keys, std::vector<rocksdb::PinnableSlice>& values,
                 std::vector<rocksdb::Status>& statuses, bool no_wait = false);
  // Applies `batch` atomically (WAL unless disabled; no fsync: a process kill loses nothing).
  rocksdb::Status write(rocksdb::WriteBatch& batch);
  // write() for the event loop, which must not wait: gives up (IsIncomplete(), nothing written)
  // when another write is in progress (it would join that write's group and wait for it) or when
  // RocksDB would stall or slow the write down (no_slowdown).
  rocksdb::Status try_write_now(rocksdb::WriteBatch& batch);
  // Open read-only (the disk was full or read-only at start): every write fails at once.
  bool read_only() const { return read_only_.load(std::memory_order_acquire); }
  // Writes can succeed as far as rend-l2 knows: not read-only, and RocksDB not stopped by an error.
  bool writable() const { return !read_only() && !health_->failing(); }
  // Times writes stopped since start: RocksDB's background errors, and read-only opens.
  uint64_t write_stops() const { return health_->failures() + read_only_opens_.load(std::memory_order_relaxed); }
  rocksdb::Slice key_slice(std::string_view k) const { return rocksdb::Slice(k.data(), k.size()); }

  uint64_t next_cas() { return cas_->next(); }
  // next_cas() without ever renewing the lease (a synced write): nullopt when it would have to.
  std::optional<uint64_t> try_next_cas() { return cas_->try_next(); }
  FlushState flush_state() const { return flush_->get(); }
  // flush_all: records the new cutoffs durably before returning. Not ordered with item writes
  // by itself: the Engine calls it holding every key stripe (see Engine::run_barrier).
  Status flush_all(uint32_t now, uint32_t delay);

  // RocksDB's figures for `stats`: properties, statistics tickers, the data dir's size on disk.
  void append_report(Report& out) const;
  uint64_t estimated_items() const;
  // Reads the data directory's size on disk: a directory walk, so not for a hot path.
  StoreFigures figures() const;
  const BudgetPlan& plan() const { return plan_; }
  const StoreOptions& options() const { return options_; }

  // Flushes memtables when the WAL is off (else their data would be lost) and closes. Idempotent.
  void close();

 private:
  Store() = default;
  Status open_db(bool read_only);
  Status read_meta(uint64_t& lease);
  Status start_cas(uint64_t lease);
  void close_db();
  // Free space the store needs before it is opened for writing: a memtable flush and the
  // MANIFEST's growth (RocksDB's own recovery waits for the same).
  uint64_t write_reserve() const { return plan_.write_buffer_size + plan_.misc_reserve; }
  // While read-only: polls the disk every second and reopens for writing once it has room.
  void start_reopener();
  void reopen_when_writable();
  bool reopen_for_writing();
  bool damaged_ = false;  // open_db failed on what RocksDB found in the files
  bool write_meta(const std::string& key, const std::string& value);
  bool write_cas_lease(uint64_t end);

  StoreOptions options_;
  BudgetPlan plan_;
  std::shared_ptr<rocksdb::Statistics> statistics_;
  std::shared_ptr<NoWaitCounters> nowait_ = std::make_shared<NoWaitCounters>();
  // The DB's Env: a no-wait file system over the default one. Declared before db_'s users and
  // destroyed after close() (the destructor's body) deleted the DB.
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<TableMerger> merger_;  // stopped by close() before the DB closes
  std::shared_ptr<FlushStateCell> flush_ = std::make_shared<FlushStateCell>();
  std::shared_ptr<std::atomic<uint64_t>> filter_dropped_ = std::make_shared<std::atomic<uint64_t>>(0);
  std::unique_ptr<CasSource> cas_;
  std::mutex flush_mutex_;  // serializes flush_all's read-modify-write of the cutoffs
  // Shared by every use of db_ (and of what it returned); exclusive to close or swap it.
  mutable std::shared_mutex db_mutex_;
  std::atomic<bool> read_only_{false};
  std::atomic<uint64_t> read_only_opens_{0};
  // True while open_db runs with db_mutex_ held exclusively: its first CAS lease write must not
  // take the shared lock.
  std::atomic<bool> opening_{false};
  std::shared_ptr<WriteHealth> health_ = std::make_shared<WriteHealth>();
  std::thread reopener_;
  std::mutex reopen_mutex_;
  std::condition_variable reopen_wake_;
  bool closing_ = false;  // under reopen_mutex_
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* items_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::WriteOptions write_options_;
  // Writes in progress (items and meta): try_write_now only goes ahead when there are none.
  std::atomic<int> writers_{0};
};

}  // namespace rend::l2
