// How a failed backend request is reported to the client (memcached has no word for it; these
// are the closest memcached-style replies).
#pragma once

#include <cstdint>
#include <string_view>

#include "common/protocol/binary_format.h"
#include "common/protocol/reply_compose.h"
#include "worker/op.h"

namespace rend::worker {

// What an op needs of its request to address the reply, once the read buffer has moved on.
struct ReplyTo {
  proto::Protocol protocol;
  proto::Command command;
  uint8_t opcode;
  uint32_t opaque;
  bool quiet;

  explicit ReplyTo(const proto::Request& r)
      : protocol(r.protocol), command(r.command), opcode(r.opcode), opaque(r.opaque), quiet(r.quiet) {}
};

// memcached's binary get-family replies: a hit carries the flags as extras (and the key for the
// K variants); a miss carries the key (K variants) or "Not found".
void append_binary_get_hit(std::string& out, uint8_t opcode, uint32_t opaque, uint64_t cas, uint32_t flags,
                           std::string_view key, std::string_view value);
void append_binary_get_miss(std::string& out, uint8_t opcode, uint32_t opaque, std::string_view key);
bool returns_key(uint8_t opcode);

std::string_view text_failure(BackendFailure why);
uint16_t binary_failure(BackendFailure why);

// A client's reply to a request whose backend step failed: the binary status, or the text error
// line (nothing for a text noreply).
void append_failure(std::string& out, const ReplyTo& to, BackendFailure why);
// A reply that is only a status: `binary_status` for a binary client, `text_line` for a text one
// (nothing for a text noreply; a binary quiet request still hears a failure).
void append_status_reply(std::string& out, const ReplyTo& to, uint16_t binary_status, std::string_view text_line);

}  // namespace rend::worker
