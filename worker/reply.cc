#include "worker/reply.h"

namespace rend::worker {

namespace bin = proto::bin;

bool returns_key(uint8_t opcode) {
  const uint8_t loud = bin::loud_opcode(opcode);
  return loud == bin::kGetK || loud == bin::kGatK;
}

void append_binary_get_hit(std::string& out, uint8_t opcode, uint32_t opaque, uint64_t cas, uint32_t flags,
                           std::string_view key, std::string_view value) {
  char extras[4];
  bin::store32(extras, flags);
  bin::append_packet(out, bin::kResponseMagic, opcode, bin::kSuccess, opaque, cas, std::string_view(extras, 4),
                     returns_key(opcode) ? key : std::string_view(), value);
}

void append_binary_get_miss(std::string& out, uint8_t opcode, uint32_t opaque, std::string_view key) {
  if (returns_key(opcode)) {
    bin::append_packet(out, bin::kResponseMagic, opcode, bin::kKeyNotFound, opaque, 0, {}, key, {});
  } else {
    proto::append_binary_status(out, opcode, opaque, bin::kKeyNotFound);
  }
}

std::string_view text_failure(BackendFailure why) {
  return why == BackendFailure::kTimeout ? "SERVER_ERROR backend timeout" : "SERVER_ERROR backend unavailable";
}

uint16_t binary_failure(BackendFailure why) {
  return why == BackendFailure::kTimeout ? bin::kTemporaryFailure : bin::kInternalError;
}

void append_failure(std::string& out, const ReplyTo& to, BackendFailure why) {
  append_status_reply(out, to, binary_failure(why), text_failure(why));
}

void append_status_reply(std::string& out, const ReplyTo& to, uint16_t binary_status, std::string_view text_line) {
  if (to.protocol == proto::Protocol::kBinary) {
    proto::append_binary_status(out, to.opcode, to.opaque, binary_status);
  } else if (!to.quiet) {
    proto::append_line(out, text_line);
  }
}

}  // namespace rend::worker
