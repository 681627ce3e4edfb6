// The handoff channel between two workers, over a real SOCK_SEQPACKET pair in one loop: what the
// sender queues arrives whole and in order, input larger than one message included, with a
// working socket; a channel whose receiver is gone closes what it could not send.
#include "worker/connection_handoff.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace rend::worker {
namespace {

// A connected pair of unix sockets of `type`: `a` and `b`.
struct SocketPair {
  int a = -1;
  int b = -1;
  explicit SocketPair(int type) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds), 0);
    a = fds[0];
    b = fds[1];
  }
};

// The channel between two workers: the sender's end and the receiver's.
struct Pair : SocketPair {
  Pair() : SocketPair(SOCK_SEQPACKET) {}
  int sender() const { return a; }
  int receiver() const { return b; }
};

// A client connection: `client` is the client's end, `server` the one a worker hands over.
struct FakeClient : SocketPair {
  FakeClient() : SocketPair(SOCK_STREAM) {}
  int client() const { return a; }
  int server() const { return b; }
};

TEST(ConnectionHandoff, ConnectionsArriveWholeAndInOrder) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Pair channel;
  std::vector<HandedConnection> got;
  bool ended = false;
  HandoffReceiver receiver(
      &loop, channel.receiver(), [&](HandedConnection c) { got.push_back(std::move(c)); }, [&] { ended = true; });
  HandoffSender sender(&loop, channel.sender());

  std::vector<FakeClient> clients(3);
  // Larger than the socket's buffer in total, and than one message each: the sender waits for room.
  const std::string big(300 * 1024, 'v');
  for (size_t i = 0; i < clients.size(); ++i) {
    HandedConnection c;
    c.fd = clients[i].server();
    c.tcp = i == 0;
    c.mode = i == 2 ? TierMode::kL1L2Batch : TierMode::kL1L2;
    c.protocol_known = i > 0;
    c.protocol = i == 1 ? proto::Protocol::kBinary : proto::Protocol::kText;
    c.swallow = i * 7;
    c.unparsed = i == 1 ? big : "set k 0 0 10\r\nhello" + std::to_string(i);
    sender.send(std::move(c));
  }
  while (!sender.idle() || got.size() < clients.size()) uv_run(&loop, UV_RUN_ONCE);
  sender.finish();
  while (!ended) uv_run(&loop, UV_RUN_ONCE);

  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(sender.lost(), 0u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tcp, i == 0);
    EXPECT_EQ(got[i].mode, i == 2 ? TierMode::kL1L2Batch : TierMode::kL1L2);
    EXPECT_EQ(got[i].protocol_known, i > 0);
    EXPECT_EQ(got[i].protocol == proto::Protocol::kBinary, i == 1);
    EXPECT_EQ(got[i].swallow, i * 7);
    EXPECT_EQ(got[i].unparsed, i == 1 ? big : "set k 0 0 10\r\nhello" + std::to_string(i));
    // The received descriptor is the same connection: the client's bytes arrive on it.
    ASSERT_GE(got[i].fd, 0);
    ASSERT_EQ(write(clients[i].client(), "x", 1), 1);
    char c = 0;
    ASSERT_EQ(read(got[i].fd, &c, 1), 1);
    EXPECT_EQ(c, 'x');
    close(got[i].fd);
    close(clients[i].client());
  }
  uv_walk(
      &loop,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(ConnectionHandoff, ABrokenChannelClosesWhatItCouldNotSend) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Pair channel;
  close(channel.receiver());  // the receiving worker died
  HandoffSender sender(&loop, channel.sender());
  FakeClient client;
  HandedConnection c;
  c.fd = client.server();
  c.unparsed = "get k\r\n";
  sender.send(std::move(c));
  EXPECT_TRUE(sender.idle());
  EXPECT_EQ(sender.lost(), 1u);
  // The client sees its connection closed rather than left hanging.
  char buf[1];
  EXPECT_EQ(read(client.client(), buf, 1), 0);
  close(client.client());
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(ConnectionHandoff, AMalformedHeaderEndsTheChannelWithoutBelievingIt) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  Pair channel;
  bool ended = false;
  int received = 0;
  HandoffReceiver receiver(
      &loop, channel.receiver(), [&](HandedConnection) { received++; }, [&] { ended = true; });
  // Right magic, but 2^62 bytes of input announced: neither allocated nor waited for.
  char header[32] = {'R', 'H', 'C', '1', 1, 0, 0, 1};
  const uint64_t huge = uint64_t{1} << 62;
  std::memcpy(header + 16, &huge, sizeof huge);
  ASSERT_EQ(write(channel.sender(), header, sizeof header), static_cast<ssize_t>(sizeof header));
  while (!ended) uv_run(&loop, UV_RUN_ONCE);
  EXPECT_EQ(received, 0);
  close(channel.sender());
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace rend::worker
