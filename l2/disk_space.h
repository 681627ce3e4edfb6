// What the file system under rend-l2's data directory allows now: is it read-only, how much room
// is left. Read with statvfs and a probe file, cheap enough to poll once a second.
#pragma once

#include <cstdint>
#include <string>

namespace rend::l2 {

struct DiskSpace {
  bool known = false;       // statvfs answered (for the directory or its nearest existing parent)
  bool read_only = false;   // mounted read-only, or remounted so after an error
  uint64_t free_bytes = 0;  // what an unprivileged writer may still use
};

DiskSpace disk_space(const std::string& dir);

// True when the disk cannot take RocksDB's writes: read-only, or with less than `reserve` free.
bool disk_refuses_writes(const std::string& dir, uint64_t reserve);

}  // namespace rend::l2
