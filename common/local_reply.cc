#include "common/local_reply.h"

#include <fmt/format.h>

#include "common/protocol/binary_format.h"
#include "common/protocol/reply_compose.h"
#include "common/version.h"

namespace rend {

using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

void append_local_reply(std::string& out, const Request& r) {
  const bool binary = r.protocol == Protocol::kBinary;
  switch (r.command) {
    case Command::kVersion:
      if (binary) {
        bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, 0, {}, {}, reported_version());
      } else {
        proto::append_line(out, fmt::format("VERSION {}", reported_version()));
      }
      return;
    case Command::kVerbosity:
      if (binary) {
        // memcached 1.6.18 does not implement binary verbosity: "Unknown command".
        proto::append_binary_status(out, r.opcode, r.opaque, bin::kUnknownCommand);
      } else if (!r.quiet) {
        proto::append_line(out, "OK");
      }
      return;
    case Command::kNoop: proto::append_binary_status(out, r.opcode, r.opaque, bin::kSuccess); return;
    case Command::kMetaNoop: proto::append_line(out, "MN"); return;
    case Command::kQuit:
      if (binary && r.opcode == bin::kQuit) proto::append_binary_status(out, r.opcode, r.opaque, bin::kSuccess);
      return;
    case Command::kTooLarge:
      if (binary) {
        proto::append_binary_status(out, r.opcode, r.opaque, bin::kTooLarge);
      } else if (!r.quiet) {
        proto::append_line(out, r.error_text);
      }
      return;
    case Command::kError:
    case Command::kUnknown:
      if (binary) {
        proto::append_binary_status(out, r.opcode, r.opaque, r.error_status);
      } else if (!r.quiet) {
        proto::append_line(out, r.error_text);
      }
      return;
    default:
      if (binary) {
        proto::append_binary_status(out, r.opcode, r.opaque, bin::kUnknownCommand);
      } else {
        proto::append_line(out, "ERROR");
      }
      return;
  }
}

}  // namespace rend
