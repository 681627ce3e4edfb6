// Striped per-key locks: what makes read-modify-write commands atomic per key across every
// connection and worker thread.
//
// A key maps to one of a fixed number of mutexes by hash. A batch locks the stripes of all the
// keys it writes, always in ascending stripe order, so two batches can never deadlock; it holds
// them across its reads and its RocksDB write. Blind writes (set) take the same stripes, so an
// incr or append can never interleave with a set of the same key. Reads take no lock: a RocksDB
// read sees either the old or the new value of a key, never a mix.
//
// Lifetime: owned by the Engine, lives as long as the process; Guards must not outlive it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace rend::l2 {

class KeyLocks {
 public:
  explicit KeyLocks(size_t stripes = 4096);
  KeyLocks(const KeyLocks&) = delete;
  KeyLocks& operator=(const KeyLocks&) = delete;

  size_t stripe(std::string_view key) const;
  // 0 .. count-1: for what must exclude every writer at once (flush_all).
  std::vector<size_t> every_stripe() const;

  // Holds a set of stripes until destroyed.
  class Guard {
   public:
    enum class Wait : uint8_t { kBlock, kTry };
    // kTry (the event loop, which must never wait for a worker): takes every stripe only if none
    // is held elsewhere, else none of them; see locked(). Never waiting cannot deadlock either.
    Guard(KeyLocks& locks, std::vector<size_t> stripes, Wait wait = Wait::kBlock);
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard();

    bool locked() const { return locked_; }

   private:
    KeyLocks& locks_;
    std::vector<size_t> stripes_;  // sorted, unique
    bool locked_ = false;
  };

 private:
  std::unique_ptr<std::mutex[]> mutexes_;
  size_t count_;
};

}  // namespace rend::l2
