#include "supervisor/connection_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "common/fd_passing.h"

namespace rend::supervisor {

namespace {

constexpr char kClientPrefix[] = "rend-client-";
constexpr char kMessagesName[] = "rend-handoff";
// Larger than any handoff message (a header and 32 KiB of input).
constexpr size_t kMaxMessage = 64 * 1024;

// The messages file: per message, whether it opens a connection (and that connection's number in
// the store) and its bytes. Little-endian on the one host that writes and reads it.
struct RecordHead {
  uint32_t opens;  // 1: the first message of connection `id`, whose socket is rend-client-<id>
  uint32_t id;
  uint32_t size;
};

void append(std::string& out, const void* data, size_t size) { out.append(static_cast<const char*>(data), size); }

bool write_all(int fd, const std::string& text) {
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string read_all(int fd) {
  std::string text;
  char buffer[65536];
  for (off_t at = 0;;) {
    const ssize_t n = pread(fd, buffer, sizeof buffer, at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
    at += n;
  }
  return text;
}

bool store_fd(int fd, const std::string& name) {
  const std::string state = "FDSTORE=1\nFDNAME=" + name;
  return sd_pid_notify_with_fds(0, 0, state.c_str(), &fd, 1) > 0;
}

}  // namespace

struct ConnectionStore::Channel {
  ConnectionStore* owner = nullptr;
  int fd = -1;
  uv_poll_t poll{};
  bool open = true;
  std::function<void()> on_end;
  ~Channel() {
    if (fd >= 0) close(fd);
  }
};

ConnectionStore::ConnectionStore(uv_loop_t* loop) : loop_(loop) {}

ConnectionStore::~ConnectionStore() {
  for (auto& m : messages_) {
    if (m.fd >= 0) close(m.fd);
  }
  for (auto& [name, fd] : passed_) close(fd);
}

void ConnectionStore::collect_from(int channel_fd, std::function<void()> on_end) {
  auto c = std::make_unique<Channel>();
  c->owner = this;
  c->fd = channel_fd;
  c->on_end = std::move(on_end);
  uv_poll_init_socket(loop_, &c->poll, channel_fd);
  c->poll.data = c.get();
  uv_poll_start(&c->poll, UV_READABLE, [](uv_poll_t* p, int, int) {
    auto* channel = static_cast<Channel*>(p->data);
    channel->owner->on_readable(*channel);
  });
  channels_.push_back(std::move(c));
}

bool ConnectionStore::collecting() const {
  for (const auto& c : channels_) {
    if (c->open) return true;
  }
  return false;
}

void ConnectionStore::on_readable(Channel& c) {
  static char buffer[kMaxMessage];
  while (c.open) {
    int fd = -1;
    const ssize_t n = receive_with_fd(c.fd, buffer, fd);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      // The worker has sent everything and exited (or the channel broke).
      c.open = false;
      uv_close(reinterpret_cast<uv_handle_t*>(&c.poll), nullptr);
      if (c.on_end) c.on_end();
      return;
    }
    messages_.push_back({std::string(buffer, static_cast<size_t>(n)), fd});
  }
}

size_t ConnectionStore::store() {
  std::string records;
  size_t stored = 0;
  uint32_t id = 0;
  bool skipping = false;  // the connection's socket could not be stored: its messages go too
  for (Message& m : messages_) {
    const bool opens = m.fd >= 0;
    if (opens) {
      ++id;
      skipping = !store_fd(m.fd, fmt::format("{}{}", kClientPrefix, id));
      close(m.fd);
      m.fd = -1;
      stored += skipping ? 0 : 1;
    }
    if (skipping) continue;
    const RecordHead head{opens ? 1u : 0u, id, static_cast<uint32_t>(m.data.size())};
    append(records, &head, sizeof head);
    records += m.data;
  }
  messages_.clear();
  if (stored == 0) return 0;
  const int file = memfd_create(kMessagesName, MFD_CLOEXEC);
  if (file < 0 || !write_all(file, records) || !store_fd(file, kMessagesName)) {
    spdlog::error("cannot keep the client connections' state in systemd: {}", strerror(errno));
    for (uint32_t i = 1; i <= id; ++i) {
      sd_notify(0, fmt::format("FDSTOREREMOVE=1\nFDNAME={}{}", kClientPrefix, i).c_str());
    }
    stored = 0;
  }
  if (file >= 0) close(file);
  return stored;
}

size_t ConnectionStore::replay(const std::function<int()>& channel_for) {
  std::map<uint32_t, int> sockets;
  int file = -1;
  for (auto& [name, fd] : passed_) {
    if (name == kMessagesName) {
      file = fd;
    } else {
      const std::string number = name.substr(std::strlen(kClientPrefix));
      sockets[static_cast<uint32_t>(std::strtoul(number.c_str(), nullptr, 10))] = fd;
    }
  }
  const std::string records = file >= 0 ? read_all(file) : std::string();
  size_t sent = 0;
  int channel = -1;
  bool skipping = true;
  for (size_t at = 0; at + sizeof(RecordHead) <= records.size();) {
    RecordHead head;
    std::memcpy(&head, records.data() + at, sizeof head);
    at += sizeof head;
    if (head.size > kMaxMessage || at + head.size > records.size()) break;  // not ours: stop there
    const std::string_view data(records.data() + at, head.size);
    at += head.size;
    if (head.opens == 1) {
      // A socket systemd dropped (the client hung up while rend was down) takes its messages along.
      auto it = sockets.find(head.id);
      skipping = it == sockets.end();
      if (skipping) continue;
      channel = channel_for();
      skipping = channel < 0 || send_with_fd(channel, data, it->second) != static_cast<ssize_t>(data.size());
      sent += skipping ? 0 : 1;
    } else if (!skipping) {
      send_with_fd(channel, data, -1);
    }
  }
  // The store keeps a copy of each socket until told: one left there would never close.
  for (auto& [name, fd] : passed_) {
    sd_notify(0, ("FDSTOREREMOVE=1\nFDNAME=" + name).c_str());
    close(fd);
  }
  passed_.clear();
  return sent;
}

bool ConnectionStore::take(const std::string& name, int fd) {
  if (!name.starts_with(kClientPrefix) && name != kMessagesName) return false;
  passed_.emplace_back(name, fd);
  return true;
}

size_t ConnectionStore::stored() const {
  size_t n = 0;
  for (const auto& [name, fd] : passed_) n += name.starts_with(kClientPrefix) ? 1 : 0;
  return n;
}

}  // namespace rend::supervisor
