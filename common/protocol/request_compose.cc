#include "common/protocol/request_compose.h"

#include <array>
#include <string_view>

#include "common/protocol/binary_format.h"

namespace rend::proto {
namespace {

void append_number(std::string& out, uint64_t v) { out += std::to_string(v); }

void append_noreply(std::string& out, bool quiet) {
  if (quiet) out += " noreply";
}

std::string_view text_name(Command command) {
  switch (command) {
    case Command::kGet: return "get";
    case Command::kGets: return "gets";
    case Command::kGat: return "gat";
    case Command::kGats: return "gats";
    case Command::kSet: return "set";
    case Command::kAdd: return "add";
    case Command::kReplace: return "replace";
    case Command::kAppend: return "append";
    case Command::kPrepend: return "prepend";
    case Command::kCas: return "cas";
    case Command::kIncr: return "incr";
    case Command::kDecr: return "decr";
    default: return {};
  }
}

// Fixed-size big-endian extras, built in place.
template <size_t N>
struct Extras {
  std::array<char, N> bytes{};
  std::string_view view() const { return {bytes.data(), N}; }
};

}  // namespace

void compose_text_request(const Request& r, std::string& out) {
  switch (r.command) {
    case Command::kGet:
    case Command::kGets:
      out += text_name(r.command);
      out += ' ';
      out += r.keys;
      break;
    case Command::kGat:
    case Command::kGats:
      out += text_name(r.command);
      out += ' ';
      append_number(out, r.exptime);
      // "gat <exptime>" with no keys is a valid (empty) read, so no trailing space then.
      if (!r.keys.empty()) {
        out += ' ';
        out += r.keys;
      }
      break;
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
      out += text_name(r.command);
      out += ' ';
      out += r.key;
      out += ' ';
      append_number(out, r.flags);
      out += ' ';
      append_number(out, r.exptime);
      out += ' ';
      append_number(out, r.value.size());
      if (r.command == Command::kCas) {
        out += ' ';
        append_number(out, r.cas);
      }
      append_noreply(out, r.quiet);
      out += "\r\n";
      out += r.value;
      break;
    case Command::kDelete:
      out += "delete ";
      out += r.key;
      append_noreply(out, r.quiet);
      break;
    case Command::kIncr:
    case Command::kDecr:
      out += text_name(r.command);
      out += ' ';
      out += r.key;
      out += ' ';
      append_number(out, r.delta);
      append_noreply(out, r.quiet);
      break;
    case Command::kTouch:
      out += "touch ";
      out += r.key;
      out += ' ';
      append_number(out, r.exptime);
      append_noreply(out, r.quiet);
      break;
    case Command::kFlushAll:
      out += "flush_all";
      if (r.has_exptime) {
        out += ' ';
        append_number(out, r.exptime);
      }
      append_noreply(out, r.quiet);
      break;
    case Command::kVersion: out += "version"; break;
    case Command::kVerbosity:
      // The level is not carried in a Request; rend only forwards the command's shape.
      out += "verbosity 1";
      append_noreply(out, r.quiet);
      break;
    case Command::kStats:
      out += "stats";
      if (!r.stats_group.empty()) {
        out += ' ';
        out += r.stats_group;
      }
      break;
    case Command::kQuit: out += "quit"; break;
    default: return;  // kNoop, kGetE: binary only; kTooLarge, kError, kUnknown: not requests to send
  }
  out += "\r\n";
}

uint8_t binary_opcode_for(Command command, bool quiet, bool return_key) {
  using namespace bin;
  switch (command) {
    case Command::kGet:
      if (return_key) return quiet ? kGetKQ : kGetK;
      return quiet ? kGetQ : kGet;
    case Command::kGat:
      if (return_key) return quiet ? kGatKQ : kGatK;
      return quiet ? kGatQ : kGat;
    case Command::kGetE:
      return quiet ? kGetEQ : kGetE;  // no K variant: the key is implied
    // A binary set with a non-zero CAS in the header is memcached's binary "cas".
    case Command::kSet:
    case Command::kCas: return quiet ? kSetQ : kSet;
    case Command::kAdd: return quiet ? kAddQ : kAdd;
    case Command::kReplace: return quiet ? kReplaceQ : kReplace;
    case Command::kAppend: return quiet ? kAppendQ : kAppend;
    case Command::kPrepend: return quiet ? kPrependQ : kPrepend;
    case Command::kDelete: return quiet ? kDeleteQ : kDelete;
    case Command::kIncr: return quiet ? kIncrementQ : kIncrement;
    case Command::kDecr: return quiet ? kDecrementQ : kDecrement;
    case Command::kFlushAll: return quiet ? kFlushQ : kFlush;
    case Command::kQuit: return quiet ? kQuitQ : kQuit;
    // These have no quiet variant; the loud opcode still performs the command (the caller then
    // has a reply to discard).
    case Command::kTouch: return kTouch;
    case Command::kVersion: return kVersion;
    case Command::kVerbosity: return kVerbosity;
    case Command::kStats: return kStat;
    case Command::kNoop: return kNoop;
    default: return 0xff;  // kGets, kGats (text only) and the non-requests
  }
}

void compose_binary_request(const Request& r, std::string& out) {
  // kGet's opcode is 0x00, so "no opcode given" and "get" look alike; both compose a get.
  const uint8_t opcode = r.opcode != 0 ? r.opcode : binary_opcode_for(r.command, r.quiet, r.return_key);
  if (opcode == 0xff) return;
  std::string_view extras;
  std::string_view key = r.key;
  std::string_view value;
  Extras<8> storage;
  Extras<20> arith;
  Extras<4> u32;
  switch (r.command) {
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kCas:
      bin::store32(storage.bytes.data(), r.flags);
      bin::store32(storage.bytes.data() + 4, r.exptime);
      extras = storage.view();
      value = r.value;
      break;
    case Command::kAppend:
    case Command::kPrepend: value = r.value; break;
    case Command::kIncr:
    case Command::kDecr:
      bin::store64(arith.bytes.data(), r.delta);
      bin::store64(arith.bytes.data() + 8, r.initial);
      bin::store32(arith.bytes.data() + 16, r.create_exptime);
      extras = arith.view();
      break;
    case Command::kTouch:
    case Command::kGat:
    case Command::kGats:  // a text gats forwarded as binary gat: same extras
      bin::store32(u32.bytes.data(), r.exptime);
      extras = u32.view();
      break;
    case Command::kFlushAll:
      key = {};  // memcached rejects a key on the keyless opcodes, so never send one
      // Without extras memcached flushes at once; a zero delay in extras would mean the same.
      if (r.has_exptime) {
        bin::store32(u32.bytes.data(), r.exptime);
        extras = u32.view();
      }
      break;
    case Command::kVerbosity:
      key = {};
      extras = u32.view();  // level 0: the level is not carried in a Request
      break;
    case Command::kStats: key = r.stats_group; break;
    case Command::kNoop:
    case Command::kVersion:
    case Command::kQuit: key = {}; break;
    default: break;  // get, getE, delete: the key alone
  }
  bin::append_packet(out, bin::kRequestMagic, opcode, 0, r.opaque, r.cas, extras, key, value,
                     r.track_races ? bin::kDataTypeTrackRaces : 0);
}

}  // namespace rend::proto
