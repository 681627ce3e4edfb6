// Client connections kept across a restart of rend (supervisor/connection_store.h), with the test
// as systemd (its notify socket and file descriptor store): two workers' handoffs that arrive
// interleaved are stored as two whole connections, and replayed to a worker's receiver each with
// its own socket and its own unparsed input.
#include "supervisor/connection_store.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/fd_passing.h"
#include "common/handoff_wire.h"
#include "common/uv_loop_close.h"
#include "worker/connection_handoff.h"

namespace rend::supervisor {
namespace {

std::string header_message(uint64_t unparsed, const std::string& first) {
  HandoffHeader h{};
  std::memcpy(h.magic, kHandoffMagic, sizeof kHandoffMagic);
  h.tcp = 1;
  h.mode = 1;
  h.protocol = 1;
  h.has_fd = 1;
  h.unparsed = unparsed;
  return std::string(reinterpret_cast<const char*>(&h), sizeof h) + first;
}

// systemd's notify socket: FDSTORE=1 messages, their names and descriptors.
struct FakeNotifySocket {
  std::string dir;
  std::string path;
  int fd = -1;
  FakeNotifySocket() {
    char temp[] = "/tmp/rend-store-XXXXXX";
    dir = mkdtemp(temp);
    path = dir + "/notify";
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    setenv("NOTIFY_SOCKET", path.c_str(), 1);
  }
  ~FakeNotifySocket() {
    unsetenv("NOTIFY_SOCKET");
    close(fd);
    unlink(path.c_str());
    rmdir(dir.c_str());
  }
  // name -> descriptor of every FDSTORE=1 received so far.
  std::map<std::string, int> stored() {
    std::map<std::string, int> out;
    char buffer[4096];
    for (;;) {
      int got = -1;
      const ssize_t n = receive_with_fd(fd, buffer, got);
      if (n <= 0) return out;
      const std::string text(buffer, static_cast<size_t>(n));
      const size_t name = text.find("FDNAME=");
      if (got >= 0 && text.find("FDSTORE=1") != std::string::npos && name != std::string::npos) {
        out[text.substr(name + 7)] = got;
      }
    }
  }
};

void run_until(uv_loop_t* loop, const std::function<bool()>& done) {
  for (int i = 0; i < 1000 && !done(); ++i) uv_run(loop, UV_RUN_NOWAIT);
}

TEST(ConnectionStore, InterleavedHandoffsAreKeptWholeAndReplayedEachWithItsOwnInput) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  FakeNotifySocket systemd;
  int a[2], b[2], client_a[2], client_b[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, a), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, b), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client_a), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client_b), 0);
  int ended = 0;
  {
    ConnectionStore store(&loop);
    store.collect_from(a[1], [&] { ended++; });
    store.collect_from(b[1], [&] { ended++; });
    // Worker A's connection is half sent when worker B's whole one arrives, then A's rest.
    const std::string input_a(50000, 'a');
    send_with_fd(a[0], header_message(input_a.size(), input_a.substr(0, 30000)), client_a[1]);
    uv_run(&loop, UV_RUN_NOWAIT);
    send_with_fd(b[0], header_message(5, "get b"), client_b[1]);
    uv_run(&loop, UV_RUN_NOWAIT);
    send_with_fd(a[0], input_a.substr(30000), -1);
    close(a[0]);
    close(b[0]);
    run_until(&loop, [&] { return ended == 2; });
    ASSERT_FALSE(store.collecting());
    EXPECT_EQ(store.store(), 2u);
  }
  std::map<std::string, int> stored = systemd.stored();
  ASSERT_EQ(stored.size(), 3u) << "two sockets and the messages";

  // The next rend: the store's descriptors come back by name and go to a worker's receiver.
  ConnectionStore next(&loop);
  for (auto& [name, fd] : stored) EXPECT_TRUE(next.take(name, fd));
  EXPECT_FALSE(next.take("rend.socket", 99)) << "a listener is not the store's";
  EXPECT_EQ(next.stored(), 2u);
  int channel[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel), 0);
  std::vector<worker::HandedConnection> got;
  bool done = false;
  worker::HandoffReceiver receiver(
      &loop, channel[1], [&](worker::HandedConnection c) { got.push_back(std::move(c)); }, [&] { done = true; });
  EXPECT_EQ(next.replay([&] { return channel[0]; }), 2u);
  close(channel[0]);
  run_until(&loop, [&] { return done; });
  ASSERT_EQ(got.size(), 2u);
  std::map<size_t, worker::HandedConnection*> by_size;
  for (auto& c : got) by_size[c.unparsed.size()] = &c;
  ASSERT_TRUE(by_size.count(50000) && by_size.count(5));
  EXPECT_EQ(by_size[50000]->unparsed, std::string(50000, 'a'));
  EXPECT_EQ(by_size[5]->unparsed, "get b");
  // Each socket is its own client's.
  ASSERT_EQ(write(client_b[0], "x", 1), 1);
  char c = 0;
  EXPECT_EQ(read(by_size[5]->fd, &c, 1), 1);
  EXPECT_EQ(c, 'x');
  for (auto* h : {by_size[5], by_size[50000]}) close(h->fd);
  for (int fd : {client_a[0], client_b[0]}) close(fd);
  close_loop(&loop);
}

}  // namespace
}  // namespace rend::supervisor
