// One chunked-L1 command (chunked_l1.h has how each command runs): the class shared by its
// read side (chunked_read.cc: reading the value, answering) and its write side
// (chunked_write.cc: storing a value as chunks and a head, cleaning up the old chunks).
#pragma once

#include <sys/random.h>

#include <cstring>
#include <ctime>
#include <optional>
#include <string>

#include "common/item_rules.h"
#include "common/meta_rules.h"
#include "common/protocol/binary_format.h"
#include "common/protocol/meta_wire.h"
#include "common/protocol/reply_compose.h"
#include "common/protocol/request_compose.h"
#include "worker/backend_pool.h"
#include "worker/chunked_l1.h"
#include "worker/key_lock.h"
#include "worker/op.h"
#include "worker/reply.h"
#include "worker/worker.h"

namespace rend::worker {

namespace bin = proto::bin;

// Opaques inside one pipelined batch: chunk i uses i; these two cannot collide with a chunk
// index (a value of max_item_size has far fewer chunks).
inline constexpr uint32_t kHeadOpaque = 0xfffffffe;
inline constexpr uint32_t kOldHeadOpaque = 0xfffffffd;

// A conditional write that keeps losing to other writers gives up after this many reads.
inline constexpr int kMaxAttempts = 32;
// Re-reads of a head whose chunks went missing because a concurrent write replaced them. A get
// may give up and miss (a cache may always miss); a read-modify-write must not judge a value
// absent that is only being rewritten, so it tries as long as it tries a conditional write.
inline constexpr int kMaxGetRetries = 4;

inline uint32_t unix_now() { return static_cast<uint32_t>(std::time(nullptr)); }

// Requests on chunk items, composed straight into the connection's output: a value of many
// chunks would otherwise cost a temporary key and value string per chunk.
inline void append_noop(std::string& out) {
  proto::Request noop;
  noop.command = proto::Command::kNoop;
  noop.opcode = proto::bin::kNoop;
  proto::compose_binary_request(noop, out);
}

inline void append_chunk_request(std::string& out, uint8_t opcode, uint32_t opaque, const chunks::Token& token,
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

inline bool is_plain_read(proto::Command c) { return c == proto::Command::kGet || c == proto::Command::kGets; }

class ChunkedCommand : public Op {
 public:
  ChunkedCommand(Worker& w, ChunkStore& store, const proto::Request& wire, std::shared_ptr<Op> target, uint32_t tag)
      : worker_(w), store_(store), target_(std::move(target)), tag_(tag), key_(wire.key), value_(wire.value) {
    req_ = wire;
    req_.key = key_;
    req_.value = value_;
    meta_flags_.assign(wire.meta_flags);
    req_.meta_flags = meta_flags_;
    req_.keys = {};
    opcode_ = bin::loud_opcode(wire.opcode);
    // The binary command memcached would run for this opcode (the wire request may come from a
    // text command: its protocol field keeps text-only rules such as "incr never creates").
    if (opcode_ == bin::kGat || opcode_ == bin::kGatK) req_.command = proto::Command::kGat;
    if (opcode_ == bin::kGet || opcode_ == bin::kGetK) req_.command = proto::Command::kGet;
  }

  void start(L1Lock lock);

  void on_response(uint32_t tag, const proto::BinaryResponse& r) override;

  void on_complete(uint32_t tag) override;

  void on_failure(uint32_t tag, BackendFailure why) override;

 private:
  enum Tag : uint32_t { kHeadRead = 1, kChunkRead, kWrite, kDeleteHead, kCleanup, kHeadOnlyWrite };

  std::shared_ptr<ChunkedCommand> shared_self();
  int max_read_retries() const { return is_plain_read(req_.command) ? kMaxGetRetries : kMaxAttempts; }
  const chunks::Layout& layout() const { return store_.layout(); }

  // Sends the requests `compose(std::string&)` appends on the key's L1 connection, answered under
  // `tag` as `kind` says. When L1 is down the command fails at once (on_failure; a cleanup's
  // failure is ignored there) and this returns false.
  template <class Compose>
  bool send(uint32_t tag, ExpectKind kind, MetricCommand command, Compose&& compose) {
    BackendPool& l1 = worker_.l1();
    return l1.send_batch(l1.index_for_key(key_), shared_self(), tag, kind, command, std::forward<Compose>(compose));
  }
  // One request.
  bool send(const proto::Request& wire, uint32_t tag, MetricCommand command);

  void begin();

  // ---- reading the current value ------------------------------------------------------------

  void read();

  void head_read(const proto::BinaryResponse& r);

  void chunk_read(const proto::BinaryResponse& r);

  void chunks_read();

  void after_read();

  // A head whose chunks are gone (evicted) holds no value; drop it unless it changed meanwhile.
  void delete_broken_head() { delete_head_if_unchanged(head_cas_); }

  // Best effort: a delete conditional on the head's CAS never removes a newer write's head.
  void delete_head_if_unchanged(uint64_t cas);

  void delete_response(const proto::BinaryResponse& r);

  // ---- writing a value ----------------------------------------------------------------------

  void write_item(uint32_t flags, uint32_t expiry, std::string_view value, uint8_t head_opcode, uint64_t cas,
                  bool blind, uint8_t marks = 0);

  void write_response(const proto::BinaryResponse& r);

  void write_done();

  void written_ok();

  // Deletes chunks nothing refers to any more; the NOOP ends the batch. Loud deletes, so a long
  // batch shows progress (see BackendConnection's timeout). Failures are harmless: memcached's
  // LRU reclaims what is left.
  void cleanup_chunks(const chunks::Token& token, uint32_t count);

  // ---- meta commands (chunked_meta.cc): l1only with chunked L1 ----------------------------------

  bool is_meta() const { return opcode_ == bin::kMeta; }
  // The read is done: common/meta_rules.h decides, as rend-l2 does in the tiered modes.
  void meta_after_read();
  // Only the head's marks changed (a read that marks the item fetched or won): the head is
  // rewritten with the same token and chunks, conditionally on its CAS.
  void write_head_only(const Item& item);
  void head_only_written(const proto::BinaryResponse& r);
  // Answers with the kMeta packet rend-l2 would send (meta_wire.h).
  void respond_meta();
  MetaChange decide_meta(uint64_t cas_for_new_value, uint64_t current_cas);

  // ---- answering as memcached would ---------------------------------------------------------

  void respond_hit(uint64_t cas, uint32_t flags, std::string_view value);

  void respond_miss();

  void respond_status(uint16_t status);

  void deliver(const std::string& packet);

  void deliver(const proto::BinaryResponse& r);

  void fail(BackendFailure why);

  void release();

  Worker& worker_;
  ChunkStore& store_;
  std::shared_ptr<Op> target_;  // null once answered
  uint32_t tag_;
  std::string key_;
  std::string value_;
  proto::Request req_;
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

  // A meta command: its flags (req_.meta_flags views them), the clock it is judged at, what it
  // decided, and the item as read.
  std::string meta_flags_;
  uint32_t meta_now_ = 0;
  MetaChange meta_;
  bool head_only_written_ = false;

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

}  // namespace rend::worker
