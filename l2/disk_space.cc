#include "l2/disk_space.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

namespace rend::l2 {

namespace {

// errno of creating a file in `dir`, 0 when it could. A file system that went read-only after an
// error (ext4's errors=remount-ro) still shows as read-write to statvfs; only a write tells.
int create_errno(const std::filesystem::path& dir) {
  const std::string probe = (dir / (".rend-l2-probe-" + std::to_string(getpid()))).string();
  const int fd = open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return errno == EEXIST ? 0 : errno;
  close(fd);
  unlink(probe.c_str());
  return 0;
}

}  // namespace

DiskSpace disk_space(const std::string& dir) {
  DiskSpace d;
  // The data directory may not exist yet (a first start): its parent's file system will hold it.
  std::filesystem::path p(dir);
  struct statvfs st;
  while (statvfs(p.c_str(), &st) != 0) {
    if (!p.has_parent_path() || p.parent_path() == p) return d;
    p = p.parent_path();
  }
  d.known = true;
  d.free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  d.read_only = (st.f_flag & ST_RDONLY) != 0;
  if (!d.read_only) {
    const int e = create_errno(p);
    d.read_only = e == EROFS;
    if (e == ENOSPC || e == EDQUOT) d.free_bytes = 0;
  }
  return d;
}

bool disk_refuses_writes(const std::string& dir, uint64_t reserve) {
  const DiskSpace d = disk_space(dir);
  return d.known && (d.read_only || d.free_bytes < reserve);
}

}  // namespace rend::l2
