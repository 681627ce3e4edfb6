#include "worker/chunked_l1.h"

#include <sys/random.h>

#include <cstring>
#include <ctime>
#include <optional>
#include <string>

#include "common/item_rules.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/reply_compose.h"
#include "common/protocol/request_compose.h"
#include "worker/backend_connection.h"
#include "worker/backend_pool.h"
#include "worker/key_lock.h"
#include "worker/op.h"
#include "worker/reply.h"
#include "worker/worker.h"

namespace rend::worker {

using proto::Command;
using proto::Request;
namespace bin = proto::bin;

ChunkStore::ChunkStore(size_t item_size) : layout_(item_size) {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) seed = std::random_device{}();
  random_.seed(seed);
}

chunks::Token ChunkStore::new_token() {
  chunks::Token t;
  const uint64_t a = random_();
  const uint64_t b = random_();
  std::memcpy(t.data(), &a, 8);
  std::memcpy(t.data() + 8, &b, 8);
  return t;
}

namespace {

// Opaques inside one pipelined batch: chunk i uses i; these two cannot collide with a chunk
// index (a value of max_item_size has far fewer chunks).
constexpr uint32_t kHeadOpaque = 0xfffffffe;
constexpr uint32_t kOldHeadOpaque = 0xfffffffd;

// A conditional write that keeps losing to other writers gives up after this many reads.
constexpr int kMaxAttempts = 32;
// Re-reads of a head whose chunks went missing because a concurrent write replaced them. A get
// may give up and miss (a cache may always miss); a read-modify-write must not judge a value
// absent that is only being rewritten, so it tries as long as it tries a conditional write.
constexpr int kMaxGetRetries = 4;

uint32_t unix_now() { return static_cast<uint32_t>(std::time(nullptr)); }

// Requests on chunk items, composed straight into the connection's output: a value of many
// chunks would otherwise cost a temporary key and value string per chunk.
void append_chunk_request(std::string& out, uint8_t opcode, uint32_t opaque, const chunks::Token& token,
                          uint32_t index, size_t extras_and_value) {
  bin::Header h;
  h.magic = bin::kRequestMagic;
  h.opcode = opcode;
  h.key_length = static_cast<uint16_t>(chunks::kChunkKeySize);
  h.extras_length = extras_and_value > 0 ? 8 : 0;
  h.body_length = static_cast<uint32_t>(chunks::kChunkKeySize + extras_and_value);
  h.opaque = opaque;
  const size_t at = out.size();
  out.resize(at + bin::kHeaderSize + h.extras_length);
  bin::encode_header(h, out.data() + at);
  if (h.extras_length > 0) {
    bin::store32(out.data() + at + bin::kHeaderSize, 0);  // memcached flags: the client's live in the head
  }
  chunks::append_chunk_key(out, token, index);
}

bool is_plain_read(Command c) { return c == Command::kGet || c == Command::kGets; }

class ChunkedCommand : public Op {
 public:
  ChunkedCommand(Worker& w, ChunkStore& store, const Request& wire, std::shared_ptr<Op> target, uint32_t tag)
      : worker_(w), store_(store), target_(std::move(target)), tag_(tag), key_(wire.key), value_(wire.value) {
    req_ = wire;
    req_.key = key_;
    req_.value = value_;
    req_.keys = {};
    opcode_ = bin::loud_opcode(wire.opcode);
    // The binary command memcached would run for this opcode (the wire request may come from a
    // text command: its protocol field keeps text-only rules such as "incr never creates").
    if (opcode_ == bin::kGat || opcode_ == bin::kGatK) req_.command = Command::kGat;
    if (opcode_ == bin::kGet || opcode_ == bin::kGetK) req_.command = Command::kGet;
  }

  void start(L1Lock lock) {
    auto self = shared_self();
    if (lock == L1Lock::kNone || !worker_.config().worker.key_ordering) {
      begin();
      return;
    }
    locked_ = true;
    exclusive_ = !is_plain_read(req_.command);
    worker_.key_lock().acquire(key_, exclusive_, [self] { self->begin(); });
  }

  void on_response(uint32_t tag, const proto::BinaryResponse& r) override {
    switch (tag) {
      case kHeadRead: head_read(r); return;
      case kChunkRead: chunk_read(r); return;
      case kWrite: write_response(r); return;
      case kDeleteHead: delete_response(r); return;
      default: return;  // cleanup: best effort
    }
  }

  void on_complete(uint32_t tag) override {
    if (tag == kChunkRead) chunks_read();
    if (tag == kWrite) write_done();
  }

  void on_failure(uint32_t tag, BackendFailure why) override {
    if (tag == kCleanup) return;
    fail(why);
  }

 private:
  enum Tag : uint32_t { kHeadRead = 1, kChunkRead, kWrite, kDeleteHead, kCleanup };

  std::shared_ptr<ChunkedCommand> shared_self() {
    return std::static_pointer_cast<ChunkedCommand>(self_weak_.lock());
  }
  BackendConnection& connection() { return worker_.l1().for_key(key_); }
  int max_read_retries() const { return is_plain_read(req_.command) ? kMaxGetRetries : kMaxAttempts; }
  const chunks::Layout& layout() const { return store_.layout(); }

  // Queues `wire` on the key's connection; false (and the command failed) when L1 is down.
  bool queue(const Request& wire) {
    BackendConnection& b = connection();
    if (!b.accepting()) {
      fail(BackendFailure::kUnavailable);
      return false;
    }
    proto::compose_binary_request(wire, b.out());
    return true;
  }
  void expect(uint32_t tag, ExpectKind kind, MetricCommand command) {
    connection().expect(shared_self(), tag, kind, command);
  }

  void begin() {
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

  // ---- reading the current value ------------------------------------------------------------

  void read() {
    ++attempts_;
    head_present_ = head_valid_ = complete_ = false;
    head_ = chunks::Head{};
    current_.clear();
    Request get;
    get.command = Command::kGet;
    get.opcode = bin::kGetK;
    get.key = key_;
    if (!queue(get)) return;
    expect(kHeadRead, ExpectKind::kSingle, MetricCommand::kGet);
  }

  void head_read(const proto::BinaryResponse& r) {
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
    BackendConnection& b = connection();
    if (!b.accepting()) {
      fail(BackendFailure::kUnavailable);
      return;
    }
    for (uint32_t i = 0; i < head_.chunks; ++i) append_chunk_request(b.out(), bin::kGetKQ, i, head_.token, i, 0);
    Request noop;
    noop.command = Command::kNoop;
    noop.opcode = bin::kNoop;
    proto::compose_binary_request(noop, b.out());
    expect(kChunkRead, ExpectKind::kUntilNoop, MetricCommand::kGet);
  }

  void chunk_read(const proto::BinaryResponse& r) {
    std::string_view payload;
    const uint32_t i = r.header.opaque;
    if (r.status() != bin::kSuccess || !layout().chunk_payload(head_, i, r.value, payload)) return;
    std::memcpy(current_.data() + head_.head_payload + size_t{i} * head_.tail_payload, payload.data(), payload.size());
    ++received_;  // memcached answers each GETKQ at most once, so a count is enough
  }

  void chunks_read() {
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

  void after_read() {
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
                   head_present_ ? head_cas_ : 0, false);
        return;
      }
      case Change::Write::kDelete: {
        Request del;
        del.command = Command::kDelete;
        del.opcode = bin::kDelete;
        del.key = key_;
        del.cas = head_cas_;
        if (!queue(del)) return;
        expect(kDeleteHead, ExpectKind::kSingle, MetricCommand::kDelete);
        return;
      }
    }
  }

  // A head whose chunks are gone (evicted) holds no value; drop it unless it changed meanwhile.
  void delete_broken_head() { delete_head_if_unchanged(head_cas_); }

  // Best effort: a delete conditional on the head's CAS never removes a newer write's head.
  void delete_head_if_unchanged(uint64_t cas) {
    Request del;
    del.command = Command::kDelete;
    del.opcode = bin::kDelete;
    del.key = key_;
    del.cas = cas;
    BackendConnection& b = connection();
    if (!b.accepting()) return;
    proto::compose_binary_request(del, b.out());
    b.expect(shared_self(), kCleanup, ExpectKind::kSingle, MetricCommand::kDelete);
  }

  void delete_response(const proto::BinaryResponse& r) {
    const uint16_t s = r.status();
    if (s == bin::kSuccess) {
      respond_status(change_.status);
      cleanup_chunks(head_.token, head_valid_ ? head_.chunks : 0);
    } else if ((s == bin::kKeyExists || s == bin::kKeyNotFound) && attempts_ < kMaxAttempts) {
      read();  // changed or gone since we read it: judge again
    } else {
      respond_status(s);
    }
  }

  // ---- writing a value ----------------------------------------------------------------------

  void write_item(uint32_t flags, uint32_t expiry, std::string_view value, uint8_t head_opcode, uint64_t cas,
                  bool blind) {
    blind_ = blind;
    written_token_ = store_.new_token();
    written_chunks_ = layout().chunks_for(key_, value.size());
    head_status_ = 0xffff;
    chunk_error_ = 0;
    new_cas_ = 0;
    old_head_valid_ = false;
    BackendConnection& b = connection();
    if (!b.accepting()) {
      fail(BackendFailure::kUnavailable);
      return;
    }
    if (blind) {
      // The value this write replaces, so its chunks can be deleted once the new head is in.
      Request get;
      get.command = Command::kGet;
      get.opcode = bin::kGetK;
      get.key = key_;
      get.opaque = kOldHeadOpaque;
      proto::compose_binary_request(get, b.out());
    }
    // memcached's own exptime of every item: the value's absolute expiry (0 = never), so all of
    // a value's items expire in the same second. Client flags live in the head.
    std::string& out = b.out();
    const size_t chunk_value = chunks::kChunkHeaderSize + layout().tail_payload();
    for (uint32_t i = 0; i < written_chunks_; ++i) {
      const size_t at = out.size();
      // Loud: each chunk's answer is also the progress that keeps a long batch from timing out.
      append_chunk_request(out, bin::kSet, i, written_token_, i, 8 + chunk_value);
      bin::store32(out.data() + at + bin::kHeaderSize + 4, expiry);
      layout().append_chunk(out, key_, value, written_token_, i);
    }
    Request set;
    const std::string bytes = layout().encode_head(key_, value, flags, expiry, written_token_);
    set.command = head_opcode == bin::kAdd ? Command::kAdd : Command::kSet;
    set.opcode = head_opcode;
    set.exptime = expiry;
    set.key = key_;
    set.value = bytes;
    set.cas = cas;
    set.opaque = kHeadOpaque;
    proto::compose_binary_request(set, b.out());
    Request noop;
    noop.command = Command::kNoop;
    noop.opcode = bin::kNoop;
    proto::compose_binary_request(noop, b.out());
    written_flags_ = flags;
    expect(kWrite, ExpectKind::kUntilNoop, MetricCommand::kSet);
  }

  void write_response(const proto::BinaryResponse& r) {
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

  void write_done() {
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

  void written_ok() {
    if (blind_) {
      if (old_head_valid_ && old_head_.token != written_token_) cleanup_chunks(old_head_.token, old_head_.chunks);
    } else if (head_valid_ && head_.token != written_token_) {
      cleanup_chunks(head_.token, head_.chunks);
    }
    if (req_.command == Command::kGat) {
      respond_hit(new_cas_, written_flags_, change_.item.data);
      return;
    }
    respond_status(bin::kSuccess);
  }

  // Deletes chunks nothing refers to any more; the NOOP ends the batch. Loud deletes, so a long
  // batch shows progress (see BackendConnection's timeout). Failures are harmless: memcached's
  // LRU reclaims what is left.
  void cleanup_chunks(const chunks::Token& token, uint32_t count) {
    if (count == 0) return;
    BackendConnection& b = connection();
    if (!b.accepting()) return;
    for (uint32_t i = 0; i < count; ++i) append_chunk_request(b.out(), bin::kDelete, 0, token, i, 0);
    Request noop;
    noop.command = Command::kNoop;
    noop.opcode = bin::kNoop;
    proto::compose_binary_request(noop, b.out());
    b.expect(shared_self(), kCleanup, ExpectKind::kUntilNoop, MetricCommand::kDelete);
  }

  // ---- answering as memcached would ---------------------------------------------------------

  void respond_hit(uint64_t cas, uint32_t flags, std::string_view value) {
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

  void respond_miss() {
    std::string packet;
    append_binary_get_miss(packet, opcode_, 0, key_);
    deliver(packet);
  }

  void respond_status(uint16_t status) {
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
      bin::append_packet(packet, bin::kResponseMagic, opcode_, status, 0, opcode_ == bin::kDelete ? 0 : new_cas_, {},
                         {}, {});
    }
    deliver(packet);
  }

  void deliver(const std::string& packet) {
    proto::BinaryResponse r;
    size_t used = 0;
    proto::parse_binary_response(std::span<const char>(packet.data(), packet.size()), packet.size(), r, used);
    deliver(r);
  }

  void deliver(const proto::BinaryResponse& r) {
    if (target_ == nullptr) return;
    auto target = std::move(target_);
    release();
    target->on_response(tag_, r);
  }

  void fail(BackendFailure why) {
    if (target_ == nullptr) return;
    auto target = std::move(target_);
    release();
    target->on_failure(tag_, why);
  }

  void release() {
    if (!locked_) return;
    locked_ = false;
    worker_.key_lock().release(key_, exclusive_);
  }

  Worker& worker_;
  ChunkStore& store_;
  std::shared_ptr<Op> target_;  // null once answered
  uint32_t tag_;
  std::string key_;
  std::string value_;
  Request req_;
  uint8_t opcode_ = 0;
  bool locked_ = false;
  bool exclusive_ = false;
  int attempts_ = 0;
  int read_retries_ = 0;
  uint64_t incomplete_cas_ = 0;  // the head last found with chunks missing
  bool verifying_add_ = false;

  // The value as read.
  bool head_present_ = false;
  bool head_valid_ = false;
  bool complete_ = false;
  uint64_t head_cas_ = 0;
  chunks::Head head_;
  std::string current_;
  uint32_t received_ = 0;
  Change change_;

  // The value being written.
  bool blind_ = false;
  chunks::Token written_token_{};
  uint32_t written_chunks_ = 0;
  uint32_t written_flags_ = 0;
  uint16_t head_status_ = 0xffff;
  uint16_t chunk_error_ = 0;
  uint64_t new_cas_ = 0;
  bool old_head_valid_ = false;
  chunks::Head old_head_;
};

}  // namespace

void send_chunked(Worker& worker, const Request& wire, const std::shared_ptr<Op>& op, uint32_t tag, L1Lock lock) {
  auto command = std::make_shared<ChunkedCommand>(worker, *worker.chunk_store(), wire, op, tag);
  command->self_weak_ = command;
  command->start(lock);
}

}  // namespace rend::worker
