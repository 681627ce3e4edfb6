// What the engine's segments share (engine.cc runs reads, barriers and locals; engine_writes.cc
// runs write segments): a request's keys, how a stored record reads at a given second, rend-l2's
// counters for reads and changes, and the chunked reading of a segment's keys.
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/item_rules.h"
#include "common/protocol/command_traits.h"
#include "common/protocol/request.h"
#include "l2/flush_state.h"
#include "l2/l2_stats.h"
#include "l2/store.h"

namespace rend::l2 {

uint32_t unix_now();
int64_t steady_ms();

inline bool is_text_multi(const proto::Request& r) { return proto::is_text_multi_key(r); }

template <typename Fn>
void for_each_request_key(const proto::Request& r, Fn&& fn) {
  if (is_text_multi(r)) {
    proto::for_each_key(r.keys, fn);
  } else {
    fn(r.key);
  }
}

size_t key_count(const proto::Request& r);
// Whether a write needs the key's current item (a plain set does not: it overwrites blindly).
bool needs_current(const proto::Request& r);

inline std::string_view view(const rocksdb::PinnableSlice& s) { return std::string_view(s.data(), s.size()); }

enum class Found : uint8_t { kLive, kAbsent, kExpired, kFlushed, kError };

// What a stored value means at `now`; meta/data are set when live.
Found classify(const rocksdb::Status& st, const rocksdb::PinnableSlice& value, const FlushState& flush, uint32_t now,
               ItemMeta& meta, std::string_view& data);

void count_get(L2Stats& s, Found f, bool touching);
void count_change(L2Stats& s, const proto::Request& r, const Change& c, bool existed);

// The current state of one key inside a write segment.
struct KeyState {
  std::optional<Item> item;
  bool error = false;  // its read failed: requests on it are answered with an error
};

// What became of one key of a write request.
enum class KeyOutcome : uint8_t {
  kDecided,        // apply_change() decided; its Change says what (and what to write)
  kReadFailed,     // the key's current item could not be read: the request fails
  kReplyTooLarge,  // a text gat/gats whose reply would pass the cap: nothing applied
};

// Bytes one hit adds to a text get/gat reply: "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n".
size_t text_value_bytes(std::string_view key, size_t data_size);

// Reads a segment's keys for the requests that need them. On a worker, at most kSegmentKeys at a
// time, as the requests come to them: a text multi-get may name hundreds of thousands of keys, and
// holding all their values at once is the memory its reply cap is there to save (a get that
// fails never reads the rest). On the loop, all at once and only from memory, since nothing may
// happen unless every key is there (the loop's budget keeps such segments small).
class SegmentReads {
 public:
  // At most this many keys per MultiGet on a worker (Engine::kSegmentKeys).
  static constexpr size_t kSegmentKeys = 128;

  SegmentReads(Store& store, std::vector<rocksdb::Slice> keys) : store_(store), keys_(std::move(keys)) {}

  // The loop: false, with nothing to use, when some key is not in memory.
  bool read_all_from_memory() {
    first_ = 0;
    if (!pin_.owns_lock()) pin_ = store_.try_pin();
    if (!pin_.owns_lock()) return false;  // the store is being reopened: a worker will wait for it
    return store_.multi_get(pin_, keys_, values_, statuses_, /*no_wait=*/true);
  }
  // Makes key `i` readable: reads the chunk that starts at it unless it is already there.
  void fetch(size_t i) {
    if (i >= first_ && i - first_ < values_.size()) return;
    first_ = i;
    chunk_.assign(keys_.begin() + static_cast<ptrdiff_t>(i),
                  keys_.begin() + static_cast<ptrdiff_t>(std::min(keys_.size(), i + kSegmentKeys)));
    if (!pin_.owns_lock()) pin_ = store_.pin();
    store_.multi_get(pin_, chunk_, values_, statuses_);
  }
  std::string_view key(size_t i) const { return std::string_view(keys_[i].data(), keys_[i].size()); }
  const rocksdb::Status& status(size_t i) const { return statuses_[i - first_]; }
  const rocksdb::PinnableSlice& value(size_t i) const { return values_[i - first_]; }
  size_t size() const { return keys_.size(); }

 private:
  Store& store_;
  Store::Pin pin_;  // first, so it outlives (is destroyed after) the values it keeps valid
  std::vector<rocksdb::Slice> keys_;
  std::vector<rocksdb::Slice> chunk_;
  size_t first_ = 0;  // the index of values_[0]
  std::vector<rocksdb::PinnableSlice> values_;
  std::vector<rocksdb::Status> statuses_;
};

}  // namespace rend::l2
