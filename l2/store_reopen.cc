// Store: from a read-only open (the disk was full or read-only at start) back to writing, by
// itself, once the disk can take writes again.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>

#include "l2/disk_space.h"
#include "l2/store.h"

namespace rend::l2 {

void Store::start_reopener() {
  reopener_ = std::thread([this] { reopen_when_writable(); });
}

void Store::reopen_when_writable() {
  std::unique_lock<std::mutex> lock(reopen_mutex_);
  while (!closing_) {
    reopen_wake_.wait_for(lock, std::chrono::seconds(1));
    if (closing_ || disk_refuses_writes(options_.data_dir, write_reserve())) continue;
    lock.unlock();
    const bool reopened = reopen_for_writing();
    lock.lock();
    if (reopened) return;
  }
}

bool Store::reopen_for_writing() {
  // Waits for every Pin: no read is using the read-only database when it goes.
  const std::unique_lock<std::shared_mutex> exclusive(db_mutex_);
  close_db();
  const Status writable = open_db(/*read_only=*/false);
  if (writable) {
    spdlog::info("the L2 disk takes writes again: store reopened for writing");
    return true;
  }
  close_db();
  const Status read_only = open_db(/*read_only=*/true);
  if (!read_only) {
    // Neither way: nothing is left to serve from. Exit, and the supervisor starts rend-l2 again.
    spdlog::critical("cannot reopen the L2 store: {}; read-only: {}", writable.message(), read_only.message());
    spdlog::default_logger()->flush();
    _exit(1);
  }
  spdlog::warn("the L2 store is still read-only: {}", writable.message());
  return false;
}

}  // namespace rend::l2
