#include "l2/nowait_file_system.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rend::l2 {

namespace {

thread_local bool t_no_wait = false;
// A read of this scope was refused. The rest are refused without trying: the caller redoes the
// whole read on a worker anyway, and a retry that succeeded because the refused read had started
// the kernel reading would mix blocks read now with a lookup RocksDB had given up on.
thread_local bool t_refused = false;

class NoWaitFile : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  // `fd` (owned) and `size` describe the same file as `target`; fd < 0 when it could not be
  // opened a second time, and then every no-wait read is refused.
  NoWaitFile(std::unique_ptr<rocksdb::FSRandomAccessFile>&& target, int fd, uint64_t size,
             std::shared_ptr<NoWaitCounters> counters)
      : FSRandomAccessFileOwnerWrapper(std::move(target)), fd_(fd), size_(size), counters_(std::move(counters)) {}
  ~NoWaitFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  rocksdb::IOStatus Read(uint64_t offset, size_t n, const rocksdb::IOOptions& options, rocksdb::Slice* result,
                         char* scratch, rocksdb::IODebugContext* dbg) const override {
    if (!t_no_wait) return target()->Read(offset, n, options, result, scratch, dbg);
    return read_now(offset, n, result, scratch);
  }

  rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    if (!t_no_wait) return target()->MultiRead(reqs, num_reqs, options, dbg);
    for (size_t i = 0; i < num_reqs; ++i)
      reqs[i].status = read_now(reqs[i].offset, reqs[i].len, &reqs[i].result, reqs[i].scratch);
    return rocksdb::IOStatus::OK();
  }

  rocksdb::IOStatus Prefetch(uint64_t offset, size_t n, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    // readahead(2) may wait to queue its I/O; a hint is simply skipped here.
    if (t_no_wait) return rocksdb::IOStatus::OK();
    return target()->Prefetch(offset, n, options, dbg);
  }

  rocksdb::IOStatus ReadAsync(rocksdb::FSReadRequest& req, const rocksdb::IOOptions& opts,
                              std::function<void(const rocksdb::FSReadRequest&, void*)> cb, void* cb_arg,
                              void** io_handle, rocksdb::IOHandleDeleter* del_fn,
                              rocksdb::IODebugContext* dbg) override {
    if (!t_no_wait) return target()->ReadAsync(req, opts, cb, cb_arg, io_handle, del_fn, dbg);
    // The base class's synchronous fallback, through this class's Read.
    return FSRandomAccessFile::ReadAsync(req, opts, cb, cb_arg, io_handle, del_fn, dbg);
  }

  // Logged once per process: no-wait reads of (some) table files are impossible here, so reads
  // that miss the block cache go to a worker thread, as they would without this file system.
  static void warn_once(int err) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      spdlog::warn("no-wait table reads unavailable ({}): L2 reads that miss the block cache go to a worker thread",
                   std::strerror(err));
    }
  }

 private:
  rocksdb::IOStatus read_now(uint64_t offset, size_t n, rocksdb::Slice* result, char* scratch) const {
    if (fd_ >= 0 && !t_refused) {
      iovec iov{scratch, n};
      ssize_t got;
      do {
        got = ::preadv2(fd_, &iov, 1, static_cast<off_t>(offset), RWF_NOWAIT);
      } while (got < 0 && errno == EINTR);
      // All of it, or all there is: a short read at the end of the file is a normal read.
      if (got >= 0 && (static_cast<size_t>(got) == n || offset + static_cast<uint64_t>(got) >= size_)) {
        *result = rocksdb::Slice(scratch, static_cast<size_t>(got));
        counters_->reads.fetch_add(1, std::memory_order_relaxed);
        return rocksdb::IOStatus::OK();
      }
      if (got < 0 && errno != EAGAIN) warn_once(errno);
    }
    // Not (all) in memory: the caller retries where waiting is fine.
    t_refused = true;
    *result = rocksdb::Slice(scratch, 0);
    counters_->would_block.fetch_add(1, std::memory_order_relaxed);
    return rocksdb::IOStatus::Busy("the read would wait for the disk");
  }

  int fd_;
  uint64_t size_;
  std::shared_ptr<NoWaitCounters> counters_;
};

class NoWaitFileSystem : public rocksdb::FileSystemWrapper {
 public:
  NoWaitFileSystem(std::shared_ptr<rocksdb::FileSystem> base, std::shared_ptr<NoWaitCounters> counters)
      : FileSystemWrapper(std::move(base)), counters_(std::move(counters)) {}

  const char* Name() const override { return "RendNoWaitFileSystem"; }

  rocksdb::IOStatus NewRandomAccessFile(const std::string& name, const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* out,
                                        rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSRandomAccessFile> file;
    rocksdb::IOStatus s = target()->NewRandomAccessFile(name, options, &file, dbg);
    if (!s.ok()) return s;
    // rend-l2 never asks for O_DIRECT; if it did, no-wait reads of such a file would be refused
    // (fd -1) rather than risk blocking the loop. The second descriptor serves no-wait reads only.
    int fd = options.use_direct_reads ? -1 : ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && ::fstat(fd, &st) != 0) {
      ::close(fd);
      fd = -1;
    }
    if (fd < 0 && !options.use_direct_reads) NoWaitFile::warn_once(errno);
    // A refused read still starts the kernel reading the block in (so the worker's read that
    // follows finds it on its way); without this hint the kernel would read ahead far past the
    // block, as for a sequential reader. RocksDB gives its own descriptor the same hint.
    if (fd >= 0) posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    *out = std::make_unique<NoWaitFile>(std::move(file), fd, static_cast<uint64_t>(st.st_size), counters_);
    return s;
  }

 private:
  std::shared_ptr<NoWaitCounters> counters_;
};

}  // namespace

NoWaitReads::NoWaitReads() {
  t_no_wait = true;
  t_refused = false;
}
NoWaitReads::~NoWaitReads() { t_no_wait = false; }

std::shared_ptr<rocksdb::FileSystem> make_nowait_file_system(std::shared_ptr<rocksdb::FileSystem> base,
                                                             std::shared_ptr<NoWaitCounters> counters) {
  return std::make_shared<NoWaitFileSystem>(std::move(base), std::move(counters));
}

}  // namespace rend::l2
