#include "common/protocol/binary_parser.h"

#include "common/protocol/item_size.h"
#include "common/protocol/meta_wire.h"

#include <cstdint>

namespace rend::proto {
namespace {

using namespace bin;

ParseResult protocol_error(const Header& h) {
  // memcached answers "Invalid arguments" and closes: after a malformed header it cannot know
  // where the next packet starts.
  ParseResult r;
  r.status = ParseStatus::kRequest;
  r.consumed = kHeaderSize;
  r.request.command = Command::kError;
  r.request.error_status = kInvalidArguments;
  r.request.close_after = true;
  r.request.opcode = h.opcode;
  r.request.opaque = h.opaque;
  return r;
}

enum class Shape : uint8_t { kKeyOnly, kStorage, kAppend, kArith, kEmpty, kFlush, kStat, kTouch, kUnknown };

struct OpcodeInfo {
  Shape shape;
  Command command;
  bool return_key;
};

OpcodeInfo describe(uint8_t loud) {
  switch (loud) {
    case kGet: return {Shape::kKeyOnly, Command::kGet, false};
    case kGetK: return {Shape::kKeyOnly, Command::kGet, true};
    case kGetE: return {Shape::kKeyOnly, Command::kGetE, false};
    case kDelete: return {Shape::kKeyOnly, Command::kDelete, false};
    case kSet: return {Shape::kStorage, Command::kSet, false};
    case kAdd: return {Shape::kStorage, Command::kAdd, false};
    case kReplace: return {Shape::kStorage, Command::kReplace, false};
    case kAppend: return {Shape::kAppend, Command::kAppend, false};
    case kPrepend: return {Shape::kAppend, Command::kPrepend, false};
    case kIncrement: return {Shape::kArith, Command::kIncr, false};
    case kDecrement: return {Shape::kArith, Command::kDecr, false};
    case kQuit: return {Shape::kEmpty, Command::kQuit, false};
    case kNoop: return {Shape::kEmpty, Command::kNoop, false};
    case kVersion: return {Shape::kEmpty, Command::kVersion, false};
    case kFlush: return {Shape::kFlush, Command::kFlushAll, false};
    case kStat: return {Shape::kStat, Command::kStats, false};
    case kTouch: return {Shape::kTouch, Command::kTouch, false};
    case kGat: return {Shape::kTouch, Command::kGat, false};
    case kGatK: return {Shape::kTouch, Command::kGat, true};
    // memcached 1.6.18 does not serve binary verbosity (0x1b): it is an unknown command there.
    default: return {Shape::kUnknown, Command::kUnknown, false};
  }
}

bool shape_valid(Shape shape, const Header& h) {
  const uint32_t body = h.body_length;
  const uint32_t key = h.key_length;
  const uint32_t ext = h.extras_length;
  switch (shape) {
    case Shape::kKeyOnly: return ext == 0 && key > 0 && body == key;
    case Shape::kStorage: return ext == 8 && key > 0 && body >= key + 8;
    case Shape::kAppend: return ext == 0 && key > 0 && body >= key;
    case Shape::kArith: return ext == 20 && key > 0 && body == key + 20;
    case Shape::kEmpty: return ext == 0 && key == 0 && body == 0;
    case Shape::kFlush: return key == 0 && body == ext && (ext == 0 || ext == 4);
    // memcached checks no more than this for stat and touch/gat: a longer body is not read with
    // the request, its bytes are parsed as the next request.
    case Shape::kStat: return ext == 0;
    case Shape::kTouch: return ext == 4 && key > 0;
    case Shape::kUnknown: return true;
  }
  return false;
}

}  // namespace

// A worker's meta command for rend-l2 (meta_wire.h): the key, then the command letter, the flags
// and a newline, then an ms data block.
ParseResult parse_meta_l2_request(std::span<const char> input, const Header& h, size_t max_item_size) {
  ParseResult error = protocol_error(h);
  error.request.protocol = Protocol::kBinary;
  if (h.extras_length != 0 || h.key_length == 0 || h.body_length <= h.key_length ||
      h.body_length > max_item_size + kMaxTextCommandLine) {
    return error;
  }
  const size_t total = kHeaderSize + h.body_length;
  if (input.size() < total) return ParseResult{};
  const std::string_view body(input.data() + kHeaderSize + h.key_length, h.body_length - h.key_length);
  const size_t newline = body.find('\n');
  const Command command = meta_command_of(body[0]);
  if (newline == std::string_view::npos || command == Command::kUnknown) return error;
  ParseResult r;
  r.status = ParseStatus::kRequest;
  r.consumed = total;
  Request& q = r.request;
  q.protocol = Protocol::kBinary;
  q.command = command;
  q.opcode = h.opcode;
  q.opaque = h.opaque;
  q.track_races = (h.data_type & kDataTypeTrackRaces) != 0;
  q.key = std::string_view(input.data() + kHeaderSize, h.key_length);
  q.meta_flags = body.substr(1, newline - 1);
  q.value = body.substr(newline + 1);
  return r;
}

ParseResult parse_binary_request(std::span<const char> input, size_t max_item_size, bool rend_private) {
  if (input.empty()) return ParseResult{};
  if (static_cast<uint8_t>(input[0]) != kRequestMagic) {
    ParseResult r;
    r.status = ParseStatus::kClose;  // memcached closes on a bad magic byte, without a reply
    return r;
  }
  if (input.size() < kHeaderSize) return ParseResult{};
  const Header h = decode_header(input.data());
  const uint8_t loud = loud_opcode(h.opcode);
  const OpcodeInfo info = describe(loud);

  // memcached reads the header, extras and key before it looks at any of them.
  const size_t head = kHeaderSize + h.extras_length + h.key_length;
  if (input.size() < head) return ParseResult{};
  ParseResult error = protocol_error(h);
  error.request.protocol = Protocol::kBinary;
  if (uint32_t{h.key_length} + h.extras_length > h.body_length) {
    // memcached answers this one "Unknown command" (and closes).
    error.request.error_status = kUnknownCommand;
    return error;
  }
  if (h.key_length > kMaxKeyLength) return error;
  if (rend_private && h.opcode == kMeta) return parse_meta_l2_request(input, h, max_item_size);

  if (info.shape == Shape::kUnknown) {
    // memcached swallows the whole body length after the extras and key it already read.
    ParseResult r;
    r.status = ParseStatus::kRequest;
    r.consumed = head;
    r.swallow = h.body_length;
    r.request.protocol = Protocol::kBinary;
    r.request.command = Command::kUnknown;
    r.request.error_status = kUnknownCommand;
    r.request.opcode = h.opcode;
    r.request.opaque = h.opaque;
    return r;
  }
  if (!shape_valid(info.shape, h)) return error;

  const bool is_storage = info.shape == Shape::kStorage || info.shape == Shape::kAppend;
  const uint64_t value_length = uint64_t{h.body_length} - h.extras_length - h.key_length;
  const uint32_t client_flags =
      h.extras_length >= 4 && input.size() >= kHeaderSize + 4 ? load32(input.data() + kHeaderSize) : 0;
  if (is_storage && !fits_memcached_item(h.key_length, client_flags, value_length, max_item_size)) {
    if (input.size() < head) return ParseResult{};
    ParseResult r;
    r.status = ParseStatus::kRequest;
    r.consumed = head;
    // memcached holds the value length in an int: from 2^31 on it is negative, so memcached
    // swallows nothing and reads what follows as the next requests. We do the same.
    r.swallow = value_length > INT32_MAX ? 0 : value_length;
    r.request.protocol = Protocol::kBinary;
    r.request.command = Command::kTooLarge;
    r.request.original = info.command;
    r.request.opcode = h.opcode;
    r.request.opaque = h.opaque;
    r.request.key = std::string_view(input.data() + kHeaderSize + h.extras_length, h.key_length);
    r.request.error_status = kTooLarge;
    return r;
  }
  const bool reads_head_only = info.shape == Shape::kStat || info.shape == Shape::kTouch;
  const size_t total = reads_head_only ? head : kHeaderSize + h.body_length;
  if (input.size() < total) return ParseResult{};

  ParseResult r;
  r.status = ParseStatus::kRequest;
  r.consumed = total;
  Request& q = r.request;
  q.protocol = Protocol::kBinary;
  q.command = info.command;
  q.opcode = h.opcode;
  q.opaque = h.opaque;
  q.cas = h.cas;
  q.quiet = is_quiet_opcode(h.opcode);
  q.return_key = info.return_key;
  const char* extras = input.data() + kHeaderSize;
  q.key = std::string_view(extras + h.extras_length, h.key_length);
  q.value = std::string_view(extras + h.extras_length + h.key_length, total - head);
  switch (info.shape) {
    case Shape::kStorage:
      q.flags = load32(extras);
      q.exptime = load32(extras + 4);
      break;
    case Shape::kArith:
      q.delta = load64(extras);
      q.initial = load64(extras + 8);
      q.create_exptime = load32(extras + 16);
      break;
    case Shape::kFlush:
      if (h.extras_length == 4) {
        q.has_exptime = true;
        q.exptime = load32(extras);
      }
      break;
    case Shape::kTouch: q.exptime = load32(extras); break;
    case Shape::kStat:
      q.stats_group = q.key;
      q.key = {};
      break;
    default: break;
  }
  if (info.command == Command::kQuit) q.close_after = true;
  return r;
}

ResponseParse parse_binary_response(std::span<const char> input, size_t max_body, BinaryResponse& out,
                                    size_t& consumed) {
  if (input.size() < kHeaderSize) return ResponseParse::kNeedMore;
  const Header h = decode_header(input.data());
  if (h.magic != kResponseMagic || h.body_length > max_body ||
      uint32_t{h.extras_length} + h.key_length > h.body_length) {
    return ResponseParse::kBad;
  }
  if (input.size() < kHeaderSize + h.body_length) return ResponseParse::kNeedMore;
  const char* body = input.data() + kHeaderSize;
  out.header = h;
  out.extras = std::string_view(body, h.extras_length);
  out.key = std::string_view(body + h.extras_length, h.key_length);
  out.value = std::string_view(body + h.extras_length + h.key_length, h.body_length - h.extras_length - h.key_length);
  consumed = kHeaderSize + h.body_length;
  return ResponseParse::kOk;
}

}  // namespace rend::proto
