#include "common/protocol/reply_compose.h"

#include <fmt/format.h>

#include <iterator>

namespace rend::proto {

std::string_view text_status_line(Command command, uint16_t status) {
  switch (status) {
    case bin::kSuccess:
      switch (command) {
        case Command::kDelete: return "DELETED";
        case Command::kTouch: return "TOUCHED";
        default: return "STORED";
      }
    case bin::kKeyNotFound:
      // A replace of a missing key is NOT_STORED in memcached's text protocol.
      if (command == Command::kReplace || command == Command::kAppend || command == Command::kPrepend) {
        return "NOT_STORED";
      }
      return "NOT_FOUND";
    case bin::kKeyExists: return command == Command::kCas ? "EXISTS" : "NOT_STORED";
    case bin::kNotStored: return "NOT_STORED";
    case bin::kTooLarge: return "SERVER_ERROR object too large for cache";
    case bin::kOutOfMemory: return "SERVER_ERROR out of memory storing object";
    case bin::kDeltaBadValue: return "CLIENT_ERROR cannot increment or decrement non-numeric value";
    case bin::kInvalidArguments: return "CLIENT_ERROR bad command line format";
    default: return "SERVER_ERROR backend error";
  }
}

void append_line(std::string& out, std::string_view line) {
  out.append(line);
  out.append("\r\n");
}

void append_text_value(std::string& out, std::string_view key, uint32_t flags, std::string_view data, bool with_cas,
                       uint64_t cas) {
  // One allocation for the whole element (and the END that usually follows): a large value is
  // then copied once, not again by a reallocation for its trailing CRLF.
  out.reserve(out.size() + key.size() + data.size() + 64);
  out.append("VALUE ");
  out.append(key);
  if (with_cas) {
    fmt::format_to(std::back_inserter(out), " {} {} {}\r\n", flags, data.size(), cas);
  } else {
    fmt::format_to(std::back_inserter(out), " {} {}\r\n", flags, data.size());
  }
  out.append(data);
  out.append("\r\n");
}

void append_binary_relay(std::string& out, uint8_t opcode, uint32_t opaque, const BinaryResponse& r) {
  bin::append_packet(out, bin::kResponseMagic, opcode, r.status(), opaque, r.header.cas, r.extras, r.key, r.value);
}

void append_binary_status(std::string& out, uint8_t opcode, uint32_t opaque, uint16_t status) {
  const std::string_view body = status == bin::kSuccess ? std::string_view() : bin::status_message(status);
  bin::append_packet(out, bin::kResponseMagic, opcode, status, opaque, 0, {}, {}, body);
}

uint32_t response_flags(const BinaryResponse& r) { return r.extras.size() >= 4 ? bin::load32(r.extras.data()) : 0; }

}  // namespace rend::proto
