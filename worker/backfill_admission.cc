#include "worker/backfill_admission.h"

#include <uv.h>
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <charconv>

#include "common/protocol/binary_format.h"
#include "common/protocol/request.h"
#include "common/protocol/request_compose.h"
#include "worker/backend_pool.h"
#include "worker/op.h"
#include "worker/worker.h"

namespace rend::worker {
namespace {

// A 64-bit finalizer (splitmix64's): gives each row its own, independent-looking index from the
// one xxh3 of the key, so a key costs one hash over its bytes however many rows there are.
uint64_t remix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

constexpr unsigned kDoorBitsPerColumn = 32;  // a window can bring 10 new keys per column
constexpr uint64_t kWindowPerColumn = 10;    // TinyLFU's sample size: 10 x the counters per row

}  // namespace

FrequencySketch::FrequencySketch(size_t width)
    : width_(std::bit_ceil(std::max<size_t>(width, 64))),
      window_(kWindowPerColumn * width_),
      counters_(kRows * width_),
      door_(width_ * kDoorBitsPerColumn / 64) {}

size_t FrequencySketch::slot(uint64_t hash, unsigned row) const {
  return row * width_ + (remix(hash + row * 0x9e3779b97f4a7c15ULL) & (width_ - 1));
}

// Two probes into the doorkeeper, from the two halves of a remix of the hash (the rows use
// other remixes, so the doorkeeper's collisions are not the counters' collisions).
bool FrequencySketch::door_has(uint64_t hash) const {
  const uint64_t bits = door_.size() * 64;
  const uint64_t h = remix(~hash);
  const uint64_t a = (h & 0xffffffff) & (bits - 1), b = (h >> 32) & (bits - 1);
  return (door_[a / 64] >> (a % 64) & 1) != 0 && (door_[b / 64] >> (b % 64) & 1) != 0;
}

void FrequencySketch::door_add(uint64_t hash) {
  const uint64_t bits = door_.size() * 64;
  const uint64_t h = remix(~hash);
  const uint64_t a = (h & 0xffffffff) & (bits - 1), b = (h >> 32) & (bits - 1);
  door_[a / 64] |= uint64_t{1} << (a % 64);
  door_[b / 64] |= uint64_t{1} << (b % 64);
}

uint32_t FrequencySketch::estimate(uint64_t hash) const {
  uint8_t least = kMaxCount;
  for (unsigned row = 0; row < kRows; ++row) least = std::min(least, counters_[slot(hash, row)]);
  return least + (door_has(hash) ? 1u : 0u);
}

uint32_t FrequencySketch::record(uint64_t hash) {
  if (!door_has(hash)) {
    door_add(hash);  // a first miss only opens the door: one-off keys never reach the counters
  } else {
    // Conservative update: only the counters at the key's minimum grow, so keys that share a
    // counter with a hot key are overestimated less.
    size_t at[kRows];
    uint8_t least = kMaxCount;
    for (unsigned row = 0; row < kRows; ++row) {
      at[row] = slot(hash, row);
      least = std::min(least, counters_[at[row]]);
    }
    if (least < kMaxCount) {
      for (size_t i : at) {
        if (counters_[i] == least) ++counters_[i];
      }
    }
  }
  const uint32_t now = estimate(hash);
  if (++recorded_ >= window_) age();
  return now;
}

void FrequencySketch::age() {
  // Halving keeps the order among hot keys while old popularity fades; clearing the doorkeeper
  // forgets the keys seen once in the window that ends.
  for (uint8_t& c : counters_) c >>= 1;
  std::fill(door_.begin(), door_.end(), 0);
  recorded_ = 0;
}

void L1Room::note_evictions(uint64_t total, uint64_t now_ms) {
  if (seen_ && total < last_total_) {
    evicted_ = false;  // a new memcached (restarted, so empty): its count starts again
  }
  // A first reading above zero counts as an eviction now: a worker (re)started against a full
  // memcached must not admit everything.
  if (seen_ ? total > last_total_ : total > 0) {
    evicted_ = true;
    last_eviction_ms_ = now_ms;
  }
  seen_ = true;
  last_total_ = total;
}

bool L1Room::has_room(uint64_t now_ms) const {
  // Not read yet (the first second of a worker): as without admission.
  return !evicted_ || now_ms - last_eviction_ms_ >= kFullForMs;
}

BackfillAdmission::BackfillAdmission(bool frequency, size_t width)
    : sketch_(frequency ? std::make_unique<FrequencySketch>(width) : nullptr) {}

bool BackfillAdmission::admit(std::string_view key, uint64_t now_ms) {
  if (!sketch_) return true;
  // Recorded even while L1 has room, so the frequencies are there once it is full.
  const uint32_t seen = sketch_->record(XXH3_64bits(key.data(), key.size()));
  return seen >= 2 || room_.has_room(now_ms);
}

// One `stats` of L1: every response is a statistic, the last one has an empty key.
class L1RoomPoll::StatsRead : public Op {
 public:
  explicit StatsRead(Worker& worker) : worker_(worker) {}
  void on_response(uint32_t, const proto::BinaryResponse& r) override {
    if (r.status() != proto::bin::kSuccess || r.key != "evictions") return;
    uint64_t v = 0;
    const auto [end, ec] = std::from_chars(r.value.data(), r.value.data() + r.value.size(), v);
    found_ = ec == std::errc() && end == r.value.data() + r.value.size();
    evictions_ = v;
  }
  void on_complete(uint32_t) override {
    // uv_hrtime, not the loop's clock: the same clock admit() is asked with.
    if (found_) worker_.admission().room().note_evictions(evictions_, uv_hrtime() / 1000000);
    busy = false;
  }
  // L1 down or slow: what was known stays (a new memcached shows as a smaller total later).
  void on_failure(uint32_t, BackendFailure) override { busy = false; }

  bool busy = true;

 private:
  Worker& worker_;
  bool found_ = false;
  uint64_t evictions_ = 0;
};

void L1RoomPoll::poll(uint64_t now_ms) {
  if (now_ms < next_ms_ || (in_flight_ && in_flight_->busy)) return;
  next_ms_ = now_ms + kIntervalMs;
  in_flight_ = std::make_shared<StatsRead>(worker_);
  proto::Request wire;
  wire.command = proto::Command::kStats;
  wire.opcode = proto::bin::kStat;
  worker_.l1().send_batch(0, in_flight_, 0, ExpectKind::kUntilStatEnd, MetricCommand::kStats,
                          [&](std::string& out) { proto::compose_binary_request(wire, out); });
}

}  // namespace rend::worker
