#include "l2/key_locks.h"

#include <xxhash.h>

#include <algorithm>
#include <numeric>

namespace rend::l2 {

KeyLocks::KeyLocks(size_t stripes) : mutexes_(new std::mutex[stripes]), count_(stripes) {}

size_t KeyLocks::stripe(std::string_view key) const {
  return static_cast<size_t>(XXH3_64bits(key.data(), key.size()) % count_);
}

std::vector<size_t> KeyLocks::every_stripe() const {
  std::vector<size_t> all(count_);
  std::iota(all.begin(), all.end(), size_t{0});
  return all;
}

KeyLocks::Guard::Guard(KeyLocks& locks, std::vector<size_t> stripes, Wait wait)
    : locks_(locks), stripes_(std::move(stripes)) {
  // One global order for every batch: no two lock holders can wait on each other.
  std::sort(stripes_.begin(), stripes_.end());
  stripes_.erase(std::unique(stripes_.begin(), stripes_.end()), stripes_.end());
  if (wait == Wait::kBlock) {
    for (size_t s : stripes_) locks_.mutexes_[s].lock();
    locked_ = true;
    return;
  }
  for (size_t i = 0; i < stripes_.size(); ++i) {
    if (!locks_.mutexes_[stripes_[i]].try_lock()) {
      while (i > 0) locks_.mutexes_[stripes_[--i]].unlock();
      stripes_.clear();
      return;
    }
  }
  locked_ = true;
}

KeyLocks::Guard::~Guard() {
  for (auto it = stripes_.rbegin(); it != stripes_.rend(); ++it) locks_.mutexes_[*it].unlock();
}

}  // namespace rend::l2
