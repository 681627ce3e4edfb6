#include "l2/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <filesystem>

#include "common/protocol/binary_format.h"
#include "l2/disk_space.h"
#include "l2/expiry_filter.h"
#include "l2/rocksdb_logger.h"

namespace rend::l2 {

namespace {

constexpr const char* kMetaFamily = "meta";
constexpr const char* kFlushKey = "flush";
constexpr const char* kCasLeaseKey = "cas_lease";

// Counts a write in progress for the time of a scope.
class WriterCount {
 public:
  explicit WriterCount(std::atomic<int>& n) : n_(n) { n_.fetch_add(1, std::memory_order_acq_rel); }
  ~WriterCount() { n_.fetch_sub(1, std::memory_order_acq_rel); }
  WriterCount(const WriterCount&) = delete;
  WriterCount& operator=(const WriterCount&) = delete;

 private:
  std::atomic<int>& n_;
};

uint64_t now_micros() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// Bytes the directory takes on disk, as du counts them (allocated blocks, not apparent sizes).
uint64_t disk_usage(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    // Files come and go under a running RocksDB; a vanished one simply does not count.
    if (lstat(it->path().c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

rocksdb::ColumnFamilyOptions items_options(const StoreOptions& o, const BudgetPlan& plan,
                                           const std::shared_ptr<rocksdb::CompactionFilterFactory>& filter) {
  rocksdb::ColumnFamilyOptions cf;
  cf.compaction_style = rocksdb::kCompactionStyleFIFO;
  cf.compaction_options_fifo.max_table_files_size = plan.sst_budget;
  // Files are merged by the TableMerger, in tiers (FIFO's own merging never fires for
  // memtable-sized files; see table_merger.h).
  cf.compaction_options_fifo.allow_compaction = false;
  cf.write_buffer_size = plan.write_buffer_size;
  cf.max_write_buffer_number = plan.max_write_buffer_number;
  cf.prefix_extractor.reset(rocksdb::NewNoopTransform());
  cf.memtable_factory.reset(rocksdb::NewHashLinkListRepFactory(std::max<size_t>(plan.write_buffer_size / 256, 4096)));
  // FIFO treats both as a TTL that deletes whole files; left at their defaults RocksDB picks 30
  // days, which would silently drop items stored without an expiry.
  cf.ttl = 0;
  cf.periodic_compaction_seconds = 0;
  cf.compaction_filter_factory = filter;
  const auto supported = rocksdb::GetSupportedCompressions();
  cf.compression = std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) != supported.end()
                       ? rocksdb::kLZ4Compression
                       : rocksdb::kNoCompression;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(static_cast<size_t>(o.block_cache_mb) << 20);
  // Every read probes every L0 file: bloom filters make that a memory lookup for most files.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.format_version = 5;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

}  // namespace

Status Store::open(const StoreOptions& options, std::unique_ptr<Store>& out, std::string* moved_aside) {
  auto attempt = [&options](std::unique_ptr<Store>& s) {
    s.reset(new Store());
    s->options_ = options;
    s->plan_ = plan_budget(options.max_bytes);
    return s->open_db(/*read_only=*/false);
  };
  std::unique_ptr<Store> s;
  Status st = attempt(s);
  if (!st && s->damaged_) {
    s.reset();  // closes what did open
    const std::string aside = options.data_dir + ".damaged";
    std::error_code ec;
    std::filesystem::remove_all(aside, ec);
    std::filesystem::rename(options.data_dir, aside, ec);
    if (ec) return Status::error(st.message() + "; cannot move it aside to " + aside + ": " + ec.message());
    spdlog::error("the L2 store is damaged ({}): moved to {}; starting empty", st.message(), aside);
    if (moved_aside != nullptr) *moved_aside = st.message();
    st = attempt(s);
  }
  if (!st && !s->damaged_ && disk_refuses_writes(options.data_dir, s->write_reserve())) {
    // A full or read-only disk: serve the store as it is rather than not at all.
    s->close_db();
    const Status read_only = s->open_db(/*read_only=*/true);
    if (!read_only) return Status::error(st.message() + "; read-only: " + read_only.message());
    spdlog::error(
        "the L2 disk cannot take writes ({}): store opened read-only, writes answer SERVER_ERROR until the "
        "disk is writable with {} bytes free",
        st.message(), s->write_reserve());
    s->start_reopener();
    st = Status::ok();
  }
  if (!st) return st;
  out = std::move(s);
  return Status::ok();
}

Status Store::open_db(bool read_only) {
  std::error_code ec;
  if (!read_only) std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) return Status::error("cannot create " + options_.data_dir + ": " + ec.message());

  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  if (!statistics_) statistics_ = rocksdb::CreateDBStatistics();  // counters carry on across a reopen
  db.statistics = statistics_;
  db.max_background_jobs = 2;
  db.allow_concurrent_memtable_write = false;
  db.max_total_wal_size = plan_.max_total_wal_size;
  // RocksDB's own small files live inside the budget too.
  db.max_manifest_file_size = plan_.misc_reserve / 2;
  db.info_log = make_rocksdb_logger();
  // Every table reader, with its index and bloom filter, stays open and pinned (RocksDB's default,
  // stated because the event loop's no-wait reads rely on it: only data blocks are ever read).
  db.max_open_files = -1;
  // A read on the event loop may drop the last reference to an old table version; deleting its
  // obsolete files then belongs on a background thread, not in that read.
  db.avoid_unnecessary_blocking_io = true;
  env_ = rocksdb::NewCompositeEnv(make_nowait_file_system(rocksdb::FileSystem::Default(), nowait_));
  db.env = env_.get();
  db.listeners.push_back(health_);
  if (!read_only) {
    merger_ =
        std::make_unique<TableMerger>(MergePolicy{.fanin = 4, .max_ratio = 2.5, .max_output = plan_.max_merge_bytes});
    db.listeners.push_back(merger_->listener());
  }

  auto filter = std::make_shared<ExpiryFilterFactory>(flush_, filter_dropped_);
  rocksdb::ColumnFamilyOptions meta;
  meta.write_buffer_size = 1 << 20;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, items_options(options_, plan_, filter)},
      {kMetaFamily, meta},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status rs = read_only ? rocksdb::DB::OpenForReadOnly(db, options_.data_dir, families, &handles, &db_)
                                 : rocksdb::DB::Open(db, options_.data_dir, families, &handles, &db_);
  if (!rs.ok()) {
    damaged_ = rs.IsCorruption() || rs.IsPathNotFound();
    return Status::error("cannot open RocksDB in " + options_.data_dir + ": " + rs.ToString());
  }
  items_ = handles[0];
  meta_ = handles[1];
  if (merger_) merger_->start(db_, items_);
  write_options_.disableWAL = !options_.wal;
  write_options_.sync = false;

  uint64_t lease = 0;
  if (Status st = read_meta(lease); !st) return st;
  if (read_only) {
    read_only_.store(true, std::memory_order_release);
    read_only_opens_.fetch_add(1, std::memory_order_relaxed);
    return Status::ok();  // no CAS is handed out: every write is refused
  }
  if (Status st = start_cas(lease); !st) return st;
  // Only now: a write that sees the store writable finds its CAS source ready.
  read_only_.store(false, std::memory_order_release);
  spdlog::info("rocksdb open in {}: budget {} bytes (table files {}, memtable {}), wal {}, block cache {} MiB",
               options_.data_dir, options_.max_bytes, plan_.sst_budget, plan_.write_buffer_size,
               options_.wal ? "on" : "off", options_.block_cache_mb);
  return Status::ok();
}

// The flush cutoffs and the persisted CAS lease, from the meta family.
Status Store::read_meta(uint64_t& lease) {
  std::string value;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), meta_, kFlushKey, &value);
  if (rs.ok()) {
    FlushState fs;
    damaged_ = !fs.decode(value);
    if (damaged_) return Status::error("corrupt flush state in " + options_.data_dir);
    flush_->set(fs);
  } else if (!rs.IsNotFound()) {
    damaged_ = rs.IsCorruption();
    return Status::error("cannot read the flush state: " + rs.ToString());
  }
  rs = db_->Get(rocksdb::ReadOptions(), meta_, kCasLeaseKey, &value);
  if (rs.ok() && value.size() == 8) {
    lease = proto::bin::load64(value.data());
  } else if (!rs.ok() && !rs.IsNotFound()) {
    damaged_ = rs.IsCorruption();
    return Status::error("cannot read the CAS lease: " + rs.ToString());
  }
  return Status::ok();
}

Status Store::start_cas(uint64_t lease) {
  // The lease is persisted under the shared lock, except for the first one, written here while
  // open_db's caller holds the lock exclusively (at start, or in a reopen).
  cas_ = std::make_unique<CasSource>(std::max(now_micros(), lease), [this](uint64_t end) {
    if (opening_.load(std::memory_order_relaxed)) return write_cas_lease(end);
    const Pin pin(db_mutex_);
    return write_cas_lease(end);
  });
  opening_.store(true, std::memory_order_relaxed);
  const bool leased = cas_->start();
  opening_.store(false, std::memory_order_relaxed);
  if (!leased) return Status::error("cannot write the CAS lease in " + options_.data_dir);
  return Status::ok();
}

bool Store::write_cas_lease(uint64_t end) {
  std::string v(8, '\0');
  proto::bin::store64(v.data(), end);
  return write_meta(kCasLeaseKey, v);
}

bool Store::write_meta(const std::string& key, const std::string& value) {
  // Always through the WAL and synced, even with l2.wal off: losing a flush or a CAS lease would
  // bring flushed items back or repeat a CAS. Then flushed at once so this rarely written family
  // never pins old WAL files (which count against the disk budget).
  rocksdb::WriteOptions wo;
  wo.sync = true;
  WriterCount counted(writers_);
  rocksdb::Status rs = db_->Put(wo, meta_, key, value);
  if (rs.ok()) {
    rocksdb::FlushOptions fo;
    fo.allow_write_stall = true;
    rs = db_->Flush(fo, meta_);
  }
  if (!rs.ok()) spdlog::error("rocksdb meta write {}: {}", key, rs.ToString());
  return rs.ok();
}

bool Store::multi_get(const Pin& pin, const std::vector<rocksdb::Slice>& keys,
                      std::vector<rocksdb::PinnableSlice>& values, std::vector<rocksdb::Status>& statuses,
                      bool no_wait) {
  assert(pin.owns_lock() && pin.mutex() == &db_mutex_);
  (void)pin;
  values.clear();
  values.resize(keys.size());
  statuses.assign(keys.size(), rocksdb::Status());
  if (keys.empty()) return true;
  const rocksdb::ReadOptions ro;
  if (!no_wait) {
    db_->MultiGet(ro, items_, keys.size(), keys.data(), values.data(), statuses.data());
    return true;
  }
  {
    NoWaitReads scope;
    db_->MultiGet(ro, items_, keys.size(), keys.data(), values.data(), statuses.data());
  }
  // Busy: a block not in memory. Any other failure is also left to the worker thread's read,
  // which reports it.
  return std::all_of(statuses.begin(), statuses.end(),
                     [](const rocksdb::Status& s) { return s.ok() || s.IsNotFound(); });
}

rocksdb::Status Store::write(rocksdb::WriteBatch& batch) {
  const Pin pin(db_mutex_);
  if (read_only()) return rocksdb::Status::IOError("the L2 store is read-only: its disk is full or read-only");
  WriterCount counted(writers_);
  return db_->Write(write_options_, &batch);
}

rocksdb::Status Store::try_write_now(rocksdb::WriteBatch& batch) {
  const Pin pin(db_mutex_, std::try_to_lock);
  if (!pin.owns_lock()) return rocksdb::Status::Incomplete("the store is being reopened");
  if (read_only()) return rocksdb::Status::IOError("the L2 store is read-only: its disk is full or read-only");
  int idle = 0;
  if (!writers_.compare_exchange_strong(idle, 1, std::memory_order_acq_rel)) {
    return rocksdb::Status::Incomplete("another write is in progress");
  }
  rocksdb::WriteOptions wo = write_options_;
  wo.no_slowdown = true;
  const rocksdb::Status st = db_->Write(wo, &batch);
  writers_.fetch_sub(1, std::memory_order_acq_rel);
  return st;
}

Status Store::flush_all(uint32_t now, uint32_t delay) {
  std::lock_guard<std::mutex> lock(flush_mutex_);
  const Pin pin(db_mutex_);
  if (read_only()) return Status::error("the L2 store is read-only: its disk is full or read-only");
  FlushState fs = flush_->get();
  fs.apply_flush(now, delay, cas_->next());
  // Visible to readers (and the compaction filter) only once it is durable.
  if (!write_meta(kFlushKey, fs.encode())) return Status::error("cannot persist flush_all");
  flush_->set(fs);
  return Status::ok();
}

uint64_t Store::estimated_items() const {
  uint64_t n = 0;
  const Pin pin(db_mutex_);
  db_->GetIntProperty(items_, rocksdb::DB::Properties::kEstimateNumKeys, &n);
  return n;
}

StoreFigures Store::figures() const {
  StoreFigures f;
  namespace P = rocksdb;
  f.disk_bytes = disk_usage(options_.data_dir);
  const Pin pin(db_mutex_);
  db_->GetIntProperty(items_, P::DB::Properties::kEstimateLiveDataSize, &f.live_data_bytes);
  db_->GetIntProperty(items_, P::DB::Properties::kTotalSstFilesSize, &f.sst_files_bytes);
  db_->GetIntProperty(items_, P::DB::Properties::kEstimatePendingCompactionBytes, &f.pending_compaction_bytes);
  db_->GetIntProperty(items_, P::DB::Properties::kEstimateNumKeys, &f.keys_estimate);
  f.write_stall_micros = statistics_->getTickerCount(P::STALL_MICROS);
  f.block_cache_hits = statistics_->getTickerCount(P::BLOCK_CACHE_HIT);
  f.block_cache_misses = statistics_->getTickerCount(P::BLOCK_CACHE_MISS);
  return f;
}

void Store::append_report(Report& out) const {
  namespace P = rocksdb;
  const Pin pin(db_mutex_);
  auto prop = [&](const std::string& name) {
    uint64_t v = 0;
    db_->GetIntProperty(items_, name, &v);
    out.emplace_back(name, std::to_string(v));
  };
  prop(P::DB::Properties::kEstimateLiveDataSize);
  prop(P::DB::Properties::kTotalSstFilesSize);
  prop(P::DB::Properties::kLiveSstFilesSize);
  prop(P::DB::Properties::kEstimatePendingCompactionBytes);
  prop(P::DB::Properties::kActualDelayedWriteRate);
  prop(P::DB::Properties::kIsWriteStopped);
  prop(P::DB::Properties::kEstimateNumKeys);
  prop(P::DB::Properties::kCurSizeAllMemTables);
  prop(P::DB::Properties::kBlockCacheUsage);
  prop(P::DB::Properties::kNumRunningFlushes);
  prop(P::DB::Properties::kNumRunningCompactions);
  std::string files;
  db_->GetProperty(items_, P::DB::Properties::kNumFilesAtLevelPrefix + "0", &files);
  out.emplace_back(P::DB::Properties::kNumFilesAtLevelPrefix + "0", files);
  for (const P::Tickers t :
       {P::BLOCK_CACHE_HIT, P::BLOCK_CACHE_MISS, P::STALL_MICROS, P::BYTES_WRITTEN, P::WAL_FILE_BYTES,
        P::FLUSH_WRITE_BYTES, P::COMPACT_WRITE_BYTES, P::NUMBER_KEYS_READ, P::NUMBER_KEYS_WRITTEN}) {
    const auto name =
        std::find_if(P::TickersNameMap.begin(), P::TickersNameMap.end(), [t](const auto& p) { return p.first == t; });
    if (name != P::TickersNameMap.end()) out.emplace_back(name->second, std::to_string(statistics_->getTickerCount(t)));
  }
  out.emplace_back("l2_loop_page_cache_reads", std::to_string(nowait_->reads.load(std::memory_order_relaxed)));
  out.emplace_back("l2_loop_would_block", std::to_string(nowait_->would_block.load(std::memory_order_relaxed)));
  out.emplace_back("l2_table_merges", std::to_string(merger_ ? merger_->merges() : 0));
  out.emplace_back("l2_table_merged_bytes", std::to_string(merger_ ? merger_->merged_bytes() : 0));
  out.emplace_back("l2_writable", writable() ? "yes" : "no");
  out.emplace_back("l2_filter_dropped", std::to_string(filter_dropped_->load(std::memory_order_relaxed)));
  out.emplace_back("l2_max_bytes", std::to_string(options_.max_bytes));
  out.emplace_back("l2_fifo_max_table_files_size", std::to_string(plan_.sst_budget));
  out.emplace_back("l2_wal", options_.wal ? "on" : "off");
  out.emplace_back("l2_data_dir_bytes", std::to_string(disk_usage(options_.data_dir)));
}

void Store::close() {
  {
    std::lock_guard<std::mutex> lock(reopen_mutex_);
    closing_ = true;
  }
  reopen_wake_.notify_all();
  if (reopener_.joinable()) reopener_.join();
  const std::unique_lock<std::shared_mutex> lock(db_mutex_);
  close_db();
}

void Store::close_db() {
  if (db_ == nullptr) return;
  if (merger_) merger_->stop();
  if (!options_.wal && !read_only()) {
    rocksdb::FlushOptions fo;
    fo.allow_write_stall = true;
    rocksdb::Status rs = db_->Flush(fo, items_);
    if (!rs.ok()) spdlog::error("rocksdb flush at close: {}", rs.ToString());
  }
  db_->DestroyColumnFamilyHandle(items_);
  db_->DestroyColumnFamilyHandle(meta_);
  rocksdb::Status rs = db_->Close();
  if (!rs.ok()) spdlog::error("rocksdb close: {}", rs.ToString());
  delete db_;
  db_ = nullptr;
  merger_.reset();
  spdlog::info("rocksdb closed");
}

Store::~Store() { close(); }

}  // namespace rend::l2
