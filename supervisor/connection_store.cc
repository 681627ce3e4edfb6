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
#include <set>

#include "common/fd_passing.h"
#include "common/handoff_wire.h"

namespace rend::supervisor {

namespace {

constexpr char kClientPrefix[] = "rend-client-";
constexpr char kMessagesPrefix[] = "rend-handoff-";
constexpr size_t kMaxMessage = sizeof(HandoffHeader) + kHandoffChunk;

// The messages file, per connection: a head, then each message as its size and its bytes. The
// socket is rend-client-<batch>-<id>. Written and read on one host.
struct ConnectionHead {
  uint32_t id;
  uint32_t messages;
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
  Connection current;      // being received
  uint64_t remaining = 0;  // input bytes of `current` still to come
  ~Channel() {
    if (fd >= 0) close(fd);
    if (current.fd >= 0) close(current.fd);
  }
};

ConnectionStore::ConnectionStore(uv_loop_t* loop) : loop_(loop) {}

ConnectionStore::~ConnectionStore() {
  for (auto& c : collected_) {
    if (c.fd >= 0) close(c.fd);
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
    const std::string_view message(buffer, n > 0 ? static_cast<size_t>(n) : 0);
    HandoffHeader h;
    uint64_t rest = 0;
    bool ok = n > 0;
    if (ok && c.current.messages.empty()) {
      // A new connection: its header, with its socket.
      ok = fd >= 0 && read_handoff_header(message, h, rest);
      c.current.fd = fd;
      c.remaining = rest;
    } else if (ok) {
      if (fd >= 0) close(fd);
      ok = message.size() <= c.remaining;
      c.remaining -= ok ? message.size() : 0;
    }
    if (!ok) {
      // The worker has sent everything and exited, or the channel broke: a connection it had not
      // finished sending is left out (it closes).
      if (n > 0) spdlog::error("a worker's connection handoff to the supervisor was malformed; stopped reading it");
      c.open = false;
      uv_close(reinterpret_cast<uv_handle_t*>(&c.poll), nullptr);
      if (c.on_end) c.on_end();
      return;
    }
    c.current.messages.emplace_back(message);
    if (c.remaining == 0) {
      collected_.push_back(std::move(c.current));
      c.current = Connection{};
    }
  }
}

size_t ConnectionStore::store() {
  if (collected_.empty()) return 0;
  const int batch = getpid();
  std::string records;
  for (size_t i = 0; i < collected_.size(); ++i) {
    const ConnectionHead head{static_cast<uint32_t>(i), static_cast<uint32_t>(collected_[i].messages.size())};
    append(records, &head, sizeof head);
    for (const std::string& m : collected_[i].messages) {
      const auto size = static_cast<uint32_t>(m.size());
      append(records, &size, sizeof size);
      records += m;
    }
  }
  // The messages first: past FileDescriptorStoreMax systemd drops what comes last, and a socket
  // without its messages is useless, while messages without their socket are skipped.
  size_t stored = 0;
  const int file = memfd_create("rend-handoff", MFD_CLOEXEC);
  if (file >= 0 && write_all(file, records) && store_fd(file, fmt::format("{}{}", kMessagesPrefix, batch))) {
    for (size_t i = 0; i < collected_.size(); ++i) {
      stored += store_fd(collected_[i].fd, fmt::format("{}{}-{}", kClientPrefix, batch, i)) ? 1 : 0;
    }
  } else {
    spdlog::error("cannot keep the client connections in systemd's store: {}", strerror(errno));
  }
  if (file >= 0) close(file);
  for (auto& c : collected_) close(c.fd);
  collected_.clear();
  return stored;
}

bool ConnectionStore::take(const std::string& name, int fd) {
  if (!name.starts_with(kClientPrefix) && !name.starts_with(kMessagesPrefix)) return false;
  passed_.emplace_back(name, fd);
  return true;
}

size_t ConnectionStore::stored() const {
  size_t n = 0;
  for (const auto& [name, fd] : passed_) n += name.starts_with(kClientPrefix) ? 1 : 0;
  return n;
}

size_t ConnectionStore::replay(const std::function<int()>& channel_for) {
  std::map<std::string, int> sockets;
  std::vector<std::pair<std::string, int>> files;  // batch, memfd
  for (auto& [name, fd] : passed_) {
    if (name.starts_with(kMessagesPrefix)) {
      files.emplace_back(name.substr(std::strlen(kMessagesPrefix)), fd);
    } else {
      sockets[name] = fd;
    }
  }
  size_t sent = 0;
  std::set<int> broken;  // channels to workers that stopped taking connections
  for (const auto& [batch, file] : files) {
    const std::string records = read_all(file);
    size_t at = 0;
    auto read = [&](void* out, size_t size) {
      if (at + size > records.size()) return false;
      std::memcpy(out, records.data() + at, size);
      at += size;
      return true;
    };
    ConnectionHead head;
    while (read(&head, sizeof head)) {
      std::vector<std::string_view> messages;
      uint32_t size = 0;
      for (uint32_t m = 0;
           m < head.messages && read(&size, sizeof size) && size <= kMaxMessage && at + size <= records.size(); ++m) {
        messages.emplace_back(records.data() + at, size);
        at += size;
      }
      if (messages.size() != head.messages) break;  // not ours: stop there
      // A socket systemd dropped (the client hung up while rend was down) leaves its messages.
      auto socket = sockets.find(fmt::format("{}{}-{}", kClientPrefix, batch, head.id));
      if (socket == sockets.end() || messages.empty()) continue;
      int channel = -1;
      for (int tries = 0; tries < 64 && channel < 0; ++tries) {
        const int c = channel_for();
        if (c < 0) break;
        if (!broken.contains(c)) channel = c;
      }
      if (channel < 0) break;
      bool ok = true;
      for (size_t m = 0; m < messages.size() && ok; ++m) {
        ok = send_with_fd(channel, messages[m], m == 0 ? socket->second : -1) ==
             static_cast<ssize_t>(messages[m].size());
      }
      // A worker that does not take a whole connection gets no more: its receiver sees the
      // channel end mid-connection and closes that one alone.
      if (!ok) {
        shutdown(channel, SHUT_WR);
        broken.insert(channel);
      }
      sent += ok ? 1 : 0;
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

}  // namespace rend::supervisor
