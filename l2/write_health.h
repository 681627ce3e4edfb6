// Whether RocksDB is refusing writes after a background error (a full disk, an I/O error), seen
// through its event listener, so rend-l2 can say so once in its log and in its metrics.
//
// RocksDB itself decides when writes may resume: after a full disk, its file manager polls the
// free space and resumes the database once there is room for a memtable flush (writes then
// succeed again with no restart); after a fatal error (a read-only remount, a failing device) it
// stays stopped until rend-l2 is restarted. Meanwhile reads are served as usual and every write
// fails at once, which rend-l2 answers SERVER_ERROR and counts (l2_write_errors).
#pragma once

#include <rocksdb/listener.h>

#include <atomic>
#include <memory>

namespace rend::l2 {

class WriteHealth : public rocksdb::EventListener {
 public:
  bool failing() const { return failing_.load(std::memory_order_relaxed); }
  // Background errors seen since start (each stop of the writes counts once).
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* bg_error) override;
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override;

 private:
  std::atomic<bool> failing_{false};
  std::atomic<uint64_t> failures_{0};
};

}  // namespace rend::l2
