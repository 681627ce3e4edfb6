#include "common/shared_stats.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <new>

namespace rend {
namespace {

constexpr uint64_t kMagic = 0x52454e4453544154ull;  // "RENDSTAT"
// 5: an entry per worker process, 4 per slot; 6: handed_over_connections; 7: backfills_skipped
constexpr uint32_t kVersion = 7;

std::string_view kNames[] = {
#define REND_COUNTER_NAME(name, kind) #name,
    REND_WORKER_COUNTERS(REND_COUNTER_NAME)
#undef REND_COUNTER_NAME
};
bool kGauges[] = {
#define REND_COUNTER_KIND(name, kind) std::string_view(#kind) == "gauge",
    REND_WORKER_COUNTERS(REND_COUNTER_KIND)
#undef REND_COUNTER_KIND
};

}  // namespace

std::string_view l2_gauge_name(L2Gauge g) {
  static constexpr std::string_view names[] = {
#define REND_L2_GAUGE_NAME(name) #name,
      REND_L2_GAUGES(REND_L2_GAUGE_NAME)
#undef REND_L2_GAUGE_NAME
  };
  return names[static_cast<size_t>(g)];
}

std::string_view counter_name(Counter c) { return kNames[static_cast<size_t>(c)]; }
bool counter_is_gauge(Counter c) { return kGauges[static_cast<size_t>(c)]; }

int SharedStats::create(SharedStats& out) {
  const int fd = memfd_create("rend-stats", MFD_CLOEXEC);
  if (fd < 0) return -1;
  if (ftruncate(fd, sizeof(SharedStatsBlock)) != 0) {
    close(fd);
    return -1;
  }
  void* p = mmap(nullptr, sizeof(SharedStatsBlock), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    return -1;
  }
  // ftruncate zero-fills, and zero is a valid state for every atomic here.
  auto* block = static_cast<SharedStatsBlock*>(p);
  block->magic = kMagic;
  block->version = kVersion;
  block->slots = kMaxWorkerSlots;
  block->supervisor_started_unix = static_cast<int64_t>(time(nullptr));
  out = SharedStats();
  out.block_ = block;
  return fd;
}

bool SharedStats::attach(int fd, SharedStats& out) {
  // Smaller than this layout (another version's, or not ours): mapping it would fault on access.
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(SharedStatsBlock))) return false;
  void* p = mmap(nullptr, sizeof(SharedStatsBlock), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return false;
  auto* block = static_cast<SharedStatsBlock*>(p);
  if (block->magic != kMagic || block->version != kVersion) {
    munmap(p, sizeof(SharedStatsBlock));
    return false;
  }
  out = SharedStats();
  out.block_ = block;
  return true;
}

SharedStats::SharedStats(SharedStats&& other) noexcept : block_(other.block_) { other.block_ = nullptr; }

SharedStats& SharedStats::operator=(SharedStats&& other) noexcept {
  if (this != &other) {
    if (block_ != nullptr) munmap(block_, sizeof(SharedStatsBlock));
    block_ = other.block_;
    other.block_ = nullptr;
  }
  return *this;
}

SharedStats::~SharedStats() {
  if (block_ != nullptr) munmap(block_, sizeof(SharedStatsBlock));
}

bool SharedStats::slot_used(size_t slot) const {
  for (const WorkerSlot& e : block_->entry[slot]) {
    if (e.pid.load(std::memory_order_relaxed) != 0) return true;
  }
  return false;
}

uint64_t SharedStats::value(size_t slot, Counter c) const {
  return sum(slot,
             [c](const WorkerSlot& e) { return e.values[static_cast<size_t>(c)].load(std::memory_order_relaxed); });
}

uint64_t SharedStats::total(Counter c) const {
  uint64_t total = 0;
  for (size_t i = 0; i < kMaxWorkerSlots; ++i) total += value(i, c);
  return total;
}

void SharedStats::clear_gauges(size_t slot, size_t k) const {
  for (size_t i = 0; i < kCounterCount; ++i) {
    if (counter_is_gauge(static_cast<Counter>(i))) set_value(entry(slot, k), static_cast<Counter>(i), 0);
  }
}

}  // namespace rend
