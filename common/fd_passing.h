// Sending an open file descriptor to another process along with a message, over a unix socket
// (SCM_RIGHTS). rend uses SOCK_SEQPACKET pairs for this: each send is one message, delivered whole
// and in order, and the descriptor arrives with the message it was sent with.
#pragma once

#include <sys/types.h>

#include <span>

namespace rend {

// Sends `data` as one message, with `fd` attached unless it is negative. Returns what sendmsg
// returns (bytes sent, or -1 with errno set: EAGAIN on a full non-blocking socket).
ssize_t send_with_fd(int socket, std::span<const char> data, int fd);

// Receives one message into `buffer`; `fd` is the descriptor that came with it (close-on-exec), or
// -1: none was sent, or the kernel dropped it because this process is out of descriptors (the
// message says which, if it matters). Returns what recvmsg returns (0 at end of stream).
ssize_t receive_with_fd(int socket, std::span<char> buffer, int& fd);

}  // namespace rend
