// The compaction filter that reclaims expired and flushed items.
//
// How it meets FIFO compaction: FIFO never rewrites a table file on its own (eviction just
// deletes the oldest files), so a filter on compactions alone would almost never run. The
// factory therefore also asks to filter memtable flushes (ShouldFilterTableFileCreation), and
// rend-l2 enables FIFO's intra-L0 compaction, which merges small flushed files once. An item that
// expires after its file went through both is reclaimed only when FIFO deletes the file; until
// then it is merely invisible to reads.
//
// A dead item is replaced by a tiny expired marker, never removed: removing the newest version of
// a key could expose an older version still sitting in an older file.
//
// Thread-safety: RocksDB creates one filter per table file being written, possibly several at
// once; the shared state (flush cutoffs, the drop counter) is thread-safe.
#pragma once

#include <rocksdb/compaction_filter.h>

#include <atomic>
#include <memory>

#include "l2/flush_state.h"

namespace rend::l2 {

class ExpiryFilterFactory : public rocksdb::CompactionFilterFactory {
 public:
  ExpiryFilterFactory(std::shared_ptr<FlushStateCell> flush, std::shared_ptr<std::atomic<uint64_t>> dropped)
      : flush_(std::move(flush)), dropped_(std::move(dropped)) {}

  bool ShouldFilterTableFileCreation(rocksdb::TableFileCreationReason reason) const override;
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& context) override;
  const char* Name() const override { return "rend.l2.ExpiryFilterFactory"; }

 private:
  std::shared_ptr<FlushStateCell> flush_;
  std::shared_ptr<std::atomic<uint64_t>> dropped_;
};

// Exposed for unit tests: the decision for one stored value at `now`.
bool item_is_dead(std::string_view stored, const FlushState& flush, uint32_t now);

}  // namespace rend::l2
