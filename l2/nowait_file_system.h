// A RocksDB FileSystem whose reads can refuse to wait for the disk.
//
// rend-l2's event loop may execute a read itself only if it finishes at once. The block cache
// alone cannot tell: with a data set larger than the cache, most reads miss it although the OS
// page cache holds the block, and handing each of them to a worker thread costs two thread
// wake-ups, more than the read. So on a thread inside a NoWaitReads scope, table files are read
// with preadv2(RWF_NOWAIT): data the page cache holds is copied at once, and a read that would
// have to wait for the device fails with Busy instead. The read (a Get or MultiGet) then reports
// that status and the caller runs it again on a worker thread, where reads block as usual.
//
// Everything else (writes, WAL, manifest, reads outside a scope) passes straight to the
// wrapped file system.
#pragma once

#include <rocksdb/file_system.h>

#include <atomic>
#include <cstdint>
#include <memory>

namespace rend::l2 {

// While alive, table reads on this thread never wait for the disk. Not nestable.
class NoWaitReads {
 public:
  NoWaitReads();
  ~NoWaitReads();
  NoWaitReads(const NoWaitReads&) = delete;
  NoWaitReads& operator=(const NoWaitReads&) = delete;
};

struct NoWaitCounters {
  std::atomic<uint64_t> reads{0};        // served from the page cache inside a scope
  std::atomic<uint64_t> would_block{0};  // refused: the data was not in memory
};

// Wraps `base`. `counters` may be shared with the caller's statistics.
std::shared_ptr<rocksdb::FileSystem> make_nowait_file_system(std::shared_ptr<rocksdb::FileSystem> base,
                                                             std::shared_ptr<NoWaitCounters> counters);

}  // namespace rend::l2
