// ChunkedCommand: storing a value as chunks and a head, then cleaning up the chunks it replaced.
#include "worker/chunked_command.h"

namespace rend::worker {

using proto::Command;
using proto::Request;

void ChunkedCommand::write_item(uint32_t flags, uint32_t expiry, std::string_view value, uint8_t head_opcode,
                                uint64_t cas, bool blind, uint8_t marks) {
  blind_ = blind;
  written_token_ = store_.new_token();
  written_chunks_ = layout().chunks_for(key_, value.size());
  head_status_ = 0xffff;
  chunk_error_ = 0;
  new_cas_ = 0;
  old_head_valid_ = false;
  written_flags_ = flags;
  send(kWrite, ExpectKind::kUntilNoop, MetricCommand::kSet, [&](std::string& out) {
    if (blind) {
      // The value this write replaces, so its chunks can be deleted once the new head is in.
      Request get;
      get.command = Command::kGet;
      get.opcode = bin::kGetK;
      get.key = key_;
      get.opaque = kOldHeadOpaque;
      proto::compose_binary_request(get, out);
    }
    // memcached's own exptime of every item: the value's absolute expiry (0 = never), so all of
    // a value's items expire in the same second. Client flags live in the head.
    const size_t chunk_value = chunks::kChunkHeaderSize + layout().tail_payload();
    for (uint32_t i = 0; i < written_chunks_; ++i) {
      const size_t at = out.size();
      // Loud: each chunk's answer is also the progress that keeps a long batch from timing out.
      append_chunk_request(out, bin::kSet, i, written_token_, i, 8 + chunk_value);
      bin::store32(out.data() + at + bin::kHeaderSize + 4, expiry);
      layout().append_chunk(out, key_, value, written_token_, i);
    }
    Request set;
    const std::string bytes = layout().encode_head(key_, value, flags, expiry, written_token_, marks);
    set.command = head_opcode == bin::kAdd ? Command::kAdd : Command::kSet;
    set.opcode = head_opcode;
    set.exptime = expiry;
    set.key = key_;
    set.value = bytes;
    set.cas = cas;
    set.opaque = kHeadOpaque;
    proto::compose_binary_request(set, out);
    append_noop(out);
  });
}

void ChunkedCommand::write_response(const proto::BinaryResponse& r) {
  const uint32_t opaque = r.header.opaque;
  if (opaque == kHeadOpaque) {
    head_status_ = r.status();
    new_cas_ = r.header.cas;
  } else if (opaque == kOldHeadOpaque) {
    if (r.status() == bin::kSuccess) {
      old_head_valid_ = layout().decode_head(r.value, old_head_);  // only its token and count are kept
      old_head_.data = {};
    }
  } else if (chunk_error_ == 0 && r.status() != bin::kSuccess) {
    chunk_error_ = r.status();
  }
}

void ChunkedCommand::write_done() {
  if (head_status_ == bin::kSuccess && chunk_error_ == 0) {
    written_ok();
    return;
  }
  cleanup_chunks(written_token_, written_chunks_);  // nothing refers to them
  if (head_status_ == bin::kSuccess) {
    // The head went in but a chunk did not (memcached out of memory): the value is unreadable,
    // so the write failed; remove the head unless someone replaced it already.
    delete_head_if_unchanged(new_cas_);
    respond_status(chunk_error_);
    return;
  }
  const bool lost_condition =
      head_status_ == bin::kKeyExists || head_status_ == bin::kKeyNotFound || head_status_ == bin::kNotStored;
  if (lost_condition && blind_) {
    // An add found a head: judge it on the whole value (an incomplete one is no value).
    verifying_add_ = true;
    read();
    return;
  }
  if (lost_condition && !blind_ && attempts_ < kMaxAttempts) {
    read();
    return;
  }
  respond_status(chunk_error_ != 0 ? chunk_error_ : head_status_);
}

void ChunkedCommand::written_ok() {
  if (blind_) {
    if (old_head_valid_ && old_head_.token != written_token_) cleanup_chunks(old_head_.token, old_head_.chunks);
  } else if (head_valid_ && head_.token != written_token_) {
    cleanup_chunks(head_.token, head_.chunks);
  }
  if (req_.command == Command::kGat) {
    respond_hit(new_cas_, written_flags_, change_.item.data);
    return;
  }
  if (is_meta()) {
    respond_meta();
    return;
  }
  respond_status(bin::kSuccess);
}

void ChunkedCommand::cleanup_chunks(const chunks::Token& token, uint32_t count) {
  if (count == 0) return;
  send(kCleanup, ExpectKind::kUntilNoop, MetricCommand::kDelete, [&](std::string& out) {
    for (uint32_t i = 0; i < count; ++i) append_chunk_request(out, bin::kDelete, 0, token, i, 0);
    append_noop(out);
  });
}

}  // namespace rend::worker
