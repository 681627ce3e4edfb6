#include "l2/table_merger.h"

#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace rend::l2 {

std::optional<Window> pick_merge(const std::vector<TableFile>& newest_first, const MergePolicy& policy) {
  // Behind the newest file of at least half the cap, no new data will arrive: what sits there
  // is settled.
  size_t settled = newest_first.size();
  for (size_t i = 0; i < newest_first.size(); ++i) {
    if (newest_first[i].size >= policy.max_output / 2) {
      settled = i;
      break;
    }
  }
  for (size_t first = 0; first < newest_first.size(); ++first) {
    const bool tiered = first < settled;
    uint64_t total = 0;
    uint64_t smallest = UINT64_MAX;
    uint64_t largest = 0;
    size_t count = 0;
    bool capped = false;  // the next file of the same tier would take the merge past max_output
    for (size_t i = first; i < newest_first.size() && count < policy.fanin; ++i) {
      const TableFile& f = newest_first[i];
      if (f.busy) break;
      const uint64_t lo = std::min(smallest, f.size);
      const uint64_t hi = std::max(largest, f.size);
      // Ahead of the settled files, only similar sizes merge: a bigger neighbour never lets a
      // smaller tier merge early.
      if (tiered && static_cast<double>(hi) > policy.max_ratio * static_cast<double>(std::max<uint64_t>(lo, 1))) break;
      if (total + f.size > policy.max_output) {
        capped = true;
        break;
      }
      smallest = lo;
      largest = hi;
      total += f.size;
      ++count;
    }
    // A full window of one tier; near the cap, what still fits (at least two files: flushes of
    // two memtables at once make such sizes); among the settled files, any two or more
    // neighbours that fit together (leftovers of uneven merges, files shrunk by expiry).
    if (count == policy.fanin || (count >= 2 && (capped || !tiered))) return Window{first, count};
  }
  return std::nullopt;
}

class TableMerger::Listener : public rocksdb::EventListener {
 public:
  explicit Listener(TableMerger& merger) : merger_(merger) {}
  const char* Name() const override { return "RendTableMerger"; }
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override { merger_.wake(); }
  void OnCompactionCompleted(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override { merger_.wake(); }

 private:
  TableMerger& merger_;
};

TableMerger::TableMerger(MergePolicy policy) : policy_(policy) {}

TableMerger::~TableMerger() { stop(); }

std::shared_ptr<rocksdb::EventListener> TableMerger::listener() { return std::make_shared<Listener>(*this); }

void TableMerger::start(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
  db_ = db;
  cf_ = cf;
  pending_ = true;  // files left by an earlier run may want merging
  thread_ = std::thread([this] { run(); });
}

void TableMerger::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (!thread_.joinable()) return;
  // A merge in progress gives up (Incomplete) instead of finishing a file nobody will read now.
  db_->DisableManualCompaction();
  thread_.join();
  db_->EnableManualCompaction();
}

void TableMerger::wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ = true;
  }
  cv_.notify_all();
}

void TableMerger::run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return pending_ || stopping_; });
      if (stopping_) return;
      pending_ = false;
    }
    // Merge until nothing qualifies; each completed merge wakes us once more, harmlessly.
    while (merge_once()) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
    }
  }
}

bool TableMerger::merge_once() {
  rocksdb::ColumnFamilyMetaData meta;
  db_->GetColumnFamilyMetaData(cf_, &meta);
  if (meta.levels.empty()) return false;
  std::vector<rocksdb::SstFileMetaData> files = meta.levels[0].files;
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.largest_seqno > b.largest_seqno; });
  std::vector<TableFile> tables;
  tables.reserve(files.size());
  for (const auto& f : files) tables.push_back({f.relative_filename, f.size, f.being_compacted});
  const std::optional<Window> window = pick_merge(tables, policy_);
  if (!window) return false;

  std::vector<std::string> inputs;
  uint64_t bytes = 0;
  for (size_t i = window->first; i < window->first + window->count; ++i) {
    inputs.push_back(tables[i].name);
    bytes += tables[i].size;
  }
  rocksdb::CompactionOptions options;
  options.compression = rocksdb::kDisableCompressionOption;  // the column family's own choice
  const auto started = std::chrono::steady_clock::now();
  const rocksdb::Status st = db_->CompactFiles(options, cf_, inputs, 0);
  if (!st.ok()) {
    // A file of the window got busy meanwhile (FIFO took it), or we are stopping: the next
    // flush or compaction wakes us again.
    if (!st.IsIncomplete() && !st.IsAborted()) spdlog::warn("merging {} table files: {}", inputs.size(), st.ToString());
    return false;
  }
  merges_.fetch_add(1, std::memory_order_relaxed);
  merged_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  spdlog::debug(
      "merged {} table files, {} bytes, in {} ms", inputs.size(), bytes,
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
  return true;
}

}  // namespace rend::l2
