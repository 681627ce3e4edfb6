#include "l2/expiry_filter.h"

#include <ctime>

#include "l2/value_format.h"

namespace rend::l2 {

namespace {

class ExpiryFilter : public rocksdb::CompactionFilter {
 public:
  ExpiryFilter(FlushState flush, uint32_t now, std::atomic<uint64_t>& dropped)
      : flush_(flush), now_(now), dropped_(dropped) {}

  Decision FilterV2(int, const rocksdb::Slice&, ValueType type, const rocksdb::Slice& value, std::string* new_value,
                    std::string*) const override {
    if (type != ValueType::kValue) return Decision::kKeep;
    const std::string_view stored(value.data(), value.size());
    if (is_dead_marker(stored) || !item_is_dead(stored, flush_, now_)) return Decision::kKeep;
    *new_value = dead_marker();
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return Decision::kChangeValue;
  }
  const char* Name() const override { return "rend.l2.ExpiryFilter"; }

 private:
  // One table file is written in seconds at most: a snapshot of the clock and the flush cutoffs
  // taken when it starts is accurate enough, and keeps the per-key path free of locks.
  FlushState flush_;
  uint32_t now_;
  std::atomic<uint64_t>& dropped_;
};

}  // namespace

bool item_is_dead(std::string_view stored, const FlushState& flush, uint32_t now) {
  ItemMeta meta;
  std::string_view data;
  if (!decode_item(stored, meta, data)) return false;  // not ours: never destroy what we can't read
  return is_expired(meta.expiry, now) || flush.is_flushed(meta.cas, meta.stored_at, now);
}

bool ExpiryFilterFactory::ShouldFilterTableFileCreation(rocksdb::TableFileCreationReason reason) const {
  return reason == rocksdb::TableFileCreationReason::kFlush || reason == rocksdb::TableFileCreationReason::kCompaction;
}

std::unique_ptr<rocksdb::CompactionFilter> ExpiryFilterFactory::CreateCompactionFilter(
    const rocksdb::CompactionFilter::Context&) {
  return std::make_unique<ExpiryFilter>(flush_->get(), static_cast<uint32_t>(time(nullptr)), *dropped_);
}

}  // namespace rend::l2
