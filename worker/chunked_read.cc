// ChunkedCommand: reading the current value, and answering the request.
#include "worker/chunked_command.h"

namespace rend::worker {

using proto::Command;
using proto::Request;

void ChunkedCommand::start(L1Lock lock) {
  auto self = shared_self();
  if (lock == L1Lock::kNone || !worker_.config().worker.key_ordering) {
    begin();
    return;
  }
  locked_ = true;
  exclusive_ = !is_plain_read(req_.command);
  worker_.key_lock().acquire(key_, exclusive_, [self] { self->begin(); });
}

void ChunkedCommand::on_response(uint32_t tag, const proto::BinaryResponse& r) {
  switch (tag) {
    case kHeadRead: head_read(r); return;
    case kChunkRead: chunk_read(r); return;
    case kWrite: write_response(r); return;
    case kDeleteHead: delete_response(r); return;
    case kHeadOnlyWrite: head_only_written(r); return;
    default: return;  // cleanup: best effort
  }
}

void ChunkedCommand::on_complete(uint32_t tag) {
  if (tag == kChunkRead) chunks_read();
  if (tag == kWrite) write_done();
}

void ChunkedCommand::on_failure(uint32_t tag, BackendFailure why) {
  if (tag == kCleanup) return;
  fail(why);
}

std::shared_ptr<ChunkedCommand> ChunkedCommand::shared_self() {
  return std::static_pointer_cast<ChunkedCommand>(self_weak_.lock());
}

bool ChunkedCommand::send(const Request& wire, uint32_t tag, MetricCommand command) {
  return send(tag, ExpectKind::kSingle, command, [&](std::string& out) { proto::compose_binary_request(wire, out); });
}

void ChunkedCommand::begin() {
  if (is_meta()) {
    read();
    return;
  }
  if (req_.command == Command::kSet && req_.cas == 0) {
    // A plain set needs nothing of the old value: one batch.
    write_item(req_.flags, absolute_expiry(req_.exptime, unix_now()), value_, bin::kSet, 0, true);
    return;
  }
  if (req_.command == Command::kAdd && req_.cas == 0 && !verifying_add_) {
    write_item(req_.flags, absolute_expiry(req_.exptime, unix_now()), value_, bin::kAdd, 0, true);
    return;
  }
  read();
}

void ChunkedCommand::read() {
  ++attempts_;
  head_present_ = head_valid_ = complete_ = false;
  head_ = chunks::Head{};
  current_.clear();
  Request get;
  get.command = Command::kGet;
  get.opcode = bin::kGetK;
  get.key = key_;
  send(get, kHeadRead, MetricCommand::kGet);
}

void ChunkedCommand::head_read(const proto::BinaryResponse& r) {
  if (r.status() == bin::kKeyNotFound) {
    after_read();
    return;
  }
  if (r.status() != bin::kSuccess) {
    respond_status(r.status());
    return;
  }
  head_present_ = true;
  head_cas_ = r.header.cas;
  head_valid_ = layout().decode_head(r.value, head_) && head_.length <= worker_.config().worker.max_item_size;
  if (!head_valid_) {
    after_read();  // not a value of ours: the key holds nothing rend can read
    return;
  }
  // head_.data points into the response, which is gone after this call: copy it now.
  current_.reserve(head_.length);
  current_.assign(head_.data);
  head_.data = {};
  if (head_.chunks == 0) {
    complete_ = true;
    after_read();
    return;
  }
  current_.resize(head_.length);
  received_ = 0;
  send(kChunkRead, ExpectKind::kUntilNoop, MetricCommand::kGet, [&](std::string& out) {
    for (uint32_t i = 0; i < head_.chunks; ++i) append_chunk_request(out, bin::kGetKQ, i, head_.token, i, 0);
    append_noop(out);
  });
}

void ChunkedCommand::chunk_read(const proto::BinaryResponse& r) {
  std::string_view payload;
  const uint32_t i = r.header.opaque;
  if (r.status() != bin::kSuccess || !layout().chunk_payload(head_, i, r.value, payload)) return;
  std::memcpy(current_.data() + head_.head_payload + size_t{i} * head_.tail_payload, payload.data(), payload.size());
  ++received_;  // memcached answers each GETKQ at most once, so a count is enough
}

void ChunkedCommand::chunks_read() {
  if (received_ == head_.chunks) {
    complete_ = true;
  } else if (head_cas_ != incomplete_cas_ && read_retries_ < max_read_retries()) {
    // Most likely a write replaced the value and deleted these chunks after we read the head:
    // read again. The same head seen twice with chunks missing has lost them (evicted).
    incomplete_cas_ = head_cas_;
    ++read_retries_;
    --attempts_;
    read();
    return;
  }
  after_read();
}

void ChunkedCommand::after_read() {
  if (is_meta()) {
    meta_after_read();
    return;
  }
  const bool broken = head_present_ && !complete_;
  if (is_plain_read(req_.command)) {
    if (complete_) {
      respond_hit(head_cas_, head_.flags, current_);
    } else {
      respond_miss();
    }
    if (broken) delete_broken_head();
    return;
  }
  Item item;
  item.meta.flags = head_.flags;
  item.meta.expiry = head_.expiry;
  item.meta.cas = head_cas_;
  item.meta.marks = head_.marks;  // a touch or an incr keeps a meta command's marks, as memcached
  if (complete_) item.data = std::move(current_);
  change_ = apply_change(req_, complete_ ? &item : nullptr, unix_now(), worker_.config().worker.max_item_size,
                         [] { return uint64_t{0}; });
  switch (change_.write) {
    case Change::Write::kNone:
      respond_status(change_.status);
      if (broken) delete_broken_head();
      return;
    case Change::Write::kPut: {
      // Replace exactly the head we read (or create it if there was none): if another worker
      // wrote in between, the condition fails and we read again.
      const Item& next = change_.item;
      write_item(next.meta.flags, next.meta.expiry, next.data, head_present_ ? bin::kSet : bin::kAdd,
                 head_present_ ? head_cas_ : 0, false, next.meta.marks);
      return;
    }
    case Change::Write::kDelete: {
      Request del;
      del.command = Command::kDelete;
      del.opcode = bin::kDelete;
      del.key = key_;
      del.cas = head_cas_;
      send(del, kDeleteHead, MetricCommand::kDelete);
      return;
    }
  }
}

void ChunkedCommand::delete_head_if_unchanged(uint64_t cas) {
  Request del;
  del.command = Command::kDelete;
  del.opcode = bin::kDelete;
  del.key = key_;
  del.cas = cas;
  send(del, kCleanup, MetricCommand::kDelete);
}

void ChunkedCommand::delete_response(const proto::BinaryResponse& r) {
  const uint16_t s = r.status();
  if (s == bin::kSuccess) {
    if (is_meta()) {
      respond_meta();
    } else {
      respond_status(change_.status);
    }
    cleanup_chunks(head_.token, head_valid_ ? head_.chunks : 0);
  } else if ((s == bin::kKeyExists || s == bin::kKeyNotFound) && attempts_ < kMaxAttempts) {
    read();  // changed or gone since we read it: judge again
  } else {
    respond_status(s);
  }
}

void ChunkedCommand::respond_hit(uint64_t cas, uint32_t flags, std::string_view value) {
  // The response memcached would send (append_binary_get_hit), as views: the value is not
  // copied into a packet only to be parsed again.
  char extras[4];
  bin::store32(extras, flags);
  proto::BinaryResponse r;
  r.header.magic = bin::kResponseMagic;
  r.header.opcode = opcode_;
  r.header.status_or_vbucket = bin::kSuccess;
  r.header.cas = cas;
  r.extras = std::string_view(extras, 4);
  if (returns_key(opcode_)) r.key = key_;
  r.value = value;
  r.header.key_length = static_cast<uint16_t>(r.key.size());
  r.header.extras_length = 4;
  r.header.body_length = static_cast<uint32_t>(4 + r.key.size() + value.size());
  deliver(r);
}

void ChunkedCommand::respond_miss() {
  std::string packet;
  append_binary_get_miss(packet, opcode_, 0, key_);
  deliver(packet);
}

void ChunkedCommand::respond_status(uint16_t status) {
  if (status == bin::kKeyNotFound && (opcode_ == bin::kGat || opcode_ == bin::kGatK)) {
    respond_miss();
    return;
  }
  std::string packet;
  if (status != bin::kSuccess) {
    proto::append_binary_status(packet, opcode_, 0, status);
  } else if (opcode_ == bin::kIncrement || opcode_ == bin::kDecrement) {
    char number[8];
    bin::store64(number, change_.number);
    bin::append_packet(packet, bin::kResponseMagic, opcode_, status, 0, new_cas_, {}, {}, std::string_view(number, 8));
  } else if (opcode_ == bin::kTouch) {
    char flags[4];
    bin::store32(flags, written_flags_);
    bin::append_packet(packet, bin::kResponseMagic, opcode_, status, 0, new_cas_, std::string_view(flags, 4), {}, {});
  } else {
    bin::append_packet(packet, bin::kResponseMagic, opcode_, status, 0, opcode_ == bin::kDelete ? 0 : new_cas_, {}, {},
                       {});
  }
  deliver(packet);
}

void ChunkedCommand::deliver(const std::string& packet) {
  proto::BinaryResponse r;
  size_t used = 0;
  proto::parse_binary_response(std::span<const char>(packet.data(), packet.size()), packet.size(), r, used);
  deliver(r);
}

void ChunkedCommand::deliver(const proto::BinaryResponse& r) {
  if (target_ == nullptr) return;
  auto target = std::move(target_);
  release();
  target->on_response(tag_, r);
}

void ChunkedCommand::fail(BackendFailure why) {
  if (target_ == nullptr) return;
  auto target = std::move(target_);
  release();
  target->on_failure(tag_, why);
}

void ChunkedCommand::release() {
  if (!locked_) return;
  locked_ = false;
  worker_.key_lock().release(key_, exclusive_);
}

}  // namespace rend::worker
