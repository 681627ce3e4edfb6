#include "l2/reply.h"

#include <fmt/format.h>

#include "common/meta_rules.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/reply_compose.h"

namespace rend::l2 {

using proto::Command;
using proto::Protocol;
using proto::Request;
namespace bin = proto::bin;

namespace {

std::string_view flags_extras(char (&buf)[8], uint32_t flags) {
  bin::store32(buf, flags);
  return std::string_view(buf, 4);
}

// A worker's tracked read of an item with meta marks: its answer says not to copy it into L1.
uint8_t no_copy_type(const Request& r, const ItemMeta& hit) {
  return r.track_races && !item_copyable(hit) ? bin::kDataTypeNoCopy : 0;
}

}  // namespace

void append_binary_read(std::string& out, const Request& r, const ItemMeta* hit, std::string_view data) {
  char extras[8];
  if (r.command == Command::kGetE) {
    // Rend's extension: the reply is always opcode GetE, with the absolute expiry after the flags.
    // The header carries the item's CAS (Rend sent 0): rend's workers keep it with L1's copy.
    if (hit != nullptr) {
      bin::store32(extras, hit->flags);
      bin::store32(extras + 4, hit->expiry);
      bin::append_packet(out, bin::kResponseMagic, bin::kGetE, bin::kSuccess, r.opaque, hit->cas,
                         std::string_view(extras, 8), {}, data, no_copy_type(r, *hit));
    } else if (!r.quiet) {
      proto::append_binary_status(out, bin::kGetE, r.opaque, bin::kKeyNotFound);
    }
    return;
  }
  if (r.command == Command::kTouch) {
    // memcached answers a binary touch with the flags only: no key, no value.
    if (hit != nullptr) {
      bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, hit->cas,
                         flags_extras(extras, hit->flags), {}, {});
    } else {
      proto::append_binary_status(out, r.opcode, r.opaque, bin::kKeyNotFound);
    }
    return;
  }
  if (hit != nullptr) {
    bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, hit->cas,
                       flags_extras(extras, hit->flags), r.return_key ? r.key : std::string_view(), data,
                       no_copy_type(r, *hit));
  } else if (r.quiet) {
    // getq/getkq/gatq/gatkq: a miss is silent.
  } else if (r.return_key) {
    // getk/gatk: memcached returns the key and no message on a miss.
    bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kKeyNotFound, r.opaque, 0, {}, r.key, {});
  } else {
    proto::append_binary_status(out, r.opcode, r.opaque, bin::kKeyNotFound);
  }
}

void append_change_reply(std::string& out, const Request& r, const Change& c) {
  const bool arith = r.command == Command::kIncr || r.command == Command::kDecr;
  if (r.protocol == Protocol::kText) {
    if (r.quiet) return;  // noreply: memcached sends nothing, whatever happened
    if (r.command == Command::kTooLarge) {
      proto::append_line(out, r.error_text);
    } else if (arith && c.status == bin::kSuccess) {
      proto::append_line(out, fmt::format("{}", c.number));
    } else {
      proto::append_line(out, proto::text_status_line(r.command, c.status));
    }
    return;
  }
  const bool is_read = r.command == Command::kGat || r.command == Command::kTouch;
  if (is_read) {
    append_binary_read(out, r, c.status == bin::kSuccess ? &c.item.meta : nullptr, c.item.data);
    return;
  }
  if (c.status != bin::kSuccess) {
    proto::append_binary_status(out, r.opcode, r.opaque, c.status);  // errors are sent even when quiet
    return;
  }
  if (r.quiet) return;
  if (arith) {
    char value[8];
    bin::store64(value, c.number);
    bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, c.item.meta.cas, {}, {},
                       std::string_view(value, 8));
  } else if (r.command == Command::kDelete) {
    bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, 0, {}, {}, {});
  } else {
    bin::append_packet(out, bin::kResponseMagic, r.opcode, bin::kSuccess, r.opaque, c.item.meta.cas, {}, {}, {});
  }
}

void append_failure(std::string& out, const Request& r, std::string_view what) {
  // A meta command's q hides only its nominal replies, never an error.
  const bool meta = r.command >= Command::kMetaGet && r.command <= Command::kMetaDebug;
  if (r.protocol == Protocol::kBinary) {
    proto::append_binary_status(out, r.opcode, r.opaque, bin::kInternalError);
  } else if (!r.quiet || meta) {
    proto::append_line(out, fmt::format("SERVER_ERROR {}", what));
  }
}

}  // namespace rend::l2
