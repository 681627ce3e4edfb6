#include "common/protocol/binary_format.h"

namespace rend::proto::bin {

std::string_view status_message(uint16_t status) {
  switch (status) {
    case kOutOfMemory: return "Out of memory";
    case kUnknownCommand: return "Unknown command";
    case kKeyNotFound: return "Not found";
    case kInvalidArguments: return "Invalid arguments";
    case kKeyExists: return "Data exists for key.";
    case kTooLarge: return "Too large.";
    case kDeltaBadValue: return "Non-numeric server-side value for incr or decr";
    case kNotStored: return "Not stored.";
    case kTemporaryFailure: return "Temporary failure";
    case kInternalError: return "Internal error";
    case kBusy: return "Busy";
    default: return "UNHANDLED ERROR";
  }
}

void append_packet(std::string& out, uint8_t magic, uint8_t opcode, uint16_t status, uint32_t opaque, uint64_t cas,
                   std::string_view extras, std::string_view key, std::string_view value, uint8_t data_type) {
  Header h;
  h.magic = magic;
  h.opcode = opcode;
  h.data_type = data_type;
  h.key_length = static_cast<uint16_t>(key.size());
  h.extras_length = static_cast<uint8_t>(extras.size());
  h.status_or_vbucket = status;
  h.body_length = static_cast<uint32_t>(extras.size() + key.size() + value.size());
  h.opaque = opaque;
  h.cas = cas;
  const size_t at = out.size();
  out.reserve(at + kHeaderSize + h.body_length);
  out.resize(at + kHeaderSize);
  encode_header(h, out.data() + at);
  out.append(extras);
  out.append(key);
  out.append(value);
}

uint8_t loud_opcode(uint8_t opcode) {
  switch (opcode) {
    case kGetQ: return kGet;
    case kGetKQ: return kGetK;
    case kSetQ: return kSet;
    case kAddQ: return kAdd;
    case kReplaceQ: return kReplace;
    case kDeleteQ: return kDelete;
    case kIncrementQ: return kIncrement;
    case kDecrementQ: return kDecrement;
    case kQuitQ: return kQuit;
    case kFlushQ: return kFlush;
    case kAppendQ: return kAppend;
    case kPrependQ: return kPrepend;
    case kGatQ: return kGat;
    case kGatKQ: return kGatK;
    case kGetEQ: return kGetE;
    default: return opcode;
  }
}

bool is_quiet_opcode(uint8_t opcode) { return loud_opcode(opcode) != opcode; }

}  // namespace rend::proto::bin
