// Workloads: what each connection sends next, and what it must get back.
//
// A workload is immutable and shared by every thread; its per-connection state is a Cursor the
// connection owns. next() fills an Op: the request in protocol-neutral form plus its expectation
// (the outcomes that are correct, and how to check a returned value). The engine composes the Op
// into wire bytes and judges the reply against the expectation.
//
// Workloads whose expectations depend on earlier requests (setget, setops, sizes) give each
// connection its own keys, so the expectations hold whatever the other connections do; replies on
// one connection come back in order, so pipelining does not change them either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "common/protocol/request.h"
#include "loadgen/model.h"
#include "loadgen/options.h"

namespace rend::loadgen {

inline constexpr size_t kMaxMultiGet = 32;
inline constexpr size_t kMaxValueSize = size_t{64} << 20;

enum class OpKind : uint8_t {
  kGet,
  kMultiGet,
  kGat,
  kSet,
  kAdd,
  kReplace,
  kAppend,
  kPrepend,
  kDelete,
  kTouch,
  kIncr,
  kDecr
};
inline constexpr size_t kOpKinds = 12;
std::string_view op_name(OpKind kind);
inline bool is_read(OpKind kind) { return kind == OpKind::kGet || kind == OpKind::kMultiGet || kind == OpKind::kGat; }
inline bool is_store(OpKind kind) { return kind >= OpKind::kSet && kind <= OpKind::kPrepend; }

// A reply, whatever the protocol, reduced to what it means.
enum class Outcome : uint8_t {
  kHit,      // a read found every key it asked for
  kMiss,     // a read found none
  kPartial,  // a multi-get found some
  kStored,
  kNotStored,
  kExists,
  kNotFound,
  kDeleted,
  kTouched,
  kNumber,      // incr/decr: the new value
  kNonNumeric,  // incr/decr of a value that is not a number
  kTooLarge,
  kErrorReply,  // ERROR, CLIENT_ERROR, SERVER_ERROR or any other binary status
};
using OutcomeSet = uint16_t;
constexpr OutcomeSet bit(Outcome o) { return static_cast<OutcomeSet>(1u << static_cast<unsigned>(o)); }
std::string_view outcome_name(Outcome outcome);
std::string outcome_set_names(OutcomeSet set);

enum class Check : uint8_t {
  kNone,
  kFlags,  // the flags are ValueModel::flags(key)
  kKeyed,  // flags, and the value is value(key, 0, n) for some n in [size_min, size_max]
  kExact,  // flags, and the value is exactly the concatenation of `segments`
};

struct Segment {
  uint64_t key = 0;
  uint64_t version = 0;
  uint32_t size = 0;
};

struct Op {
  OpKind kind = OpKind::kGet;
  uint8_t nkeys = 1;
  uint64_t keys[kMaxMultiGet] = {};
  std::string_view value;  // storage commands: the bytes to send (block slice or cursor scratch)
  uint32_t flags = 0;
  uint32_t exptime = 0;
  uint64_t delta = 0;
  // The outcomes that are correct, and how to check each returned value.
  OutcomeSet accept = 0;
  Check check = Check::kNone;
  uint8_t nsegments = 0;
  Segment segments[3];
  uint32_t size_min = 0, size_max = 0;
};

// Per-connection workload state (plain data, owned by the connection).
struct Cursor {
  uint64_t begin = 0, end = 0;  // the connection's own keys / size indices: [begin, end)
  uint64_t stride = 1;          // sizes: indices begin, begin+stride, ...
  uint64_t next = 0;            // the current key / index
  uint64_t pass = 0;            // completed walks over [begin, end)
  uint32_t step = 0;            // position in the current key's script
  char number[24] = {};         // blast: a decimal value for a counter key
};

class Workload {
 public:
  virtual ~Workload() = default;
  virtual std::string_view name() const = 0;
  // Gives global connection `index` of `count` its share of the work.
  virtual void start(Cursor& c, uint64_t index, uint64_t count) const = 0;
  // The next request of the connection; false when its share is done.
  virtual bool next(Cursor& c, Rng& rng, Op& op) const = 0;
  // After a reconnect (requests in flight were lost): continue from a point whose expectations
  // do not depend on them.
  virtual void restart(Cursor& c) const { c.step = 0; }
};

// Workloads that write before they read (setget, sizes, setops) mix `values.nonce()` into their
// versions, so a value left by an earlier run can never pass for the one just written.
// `cycle`: setget/setops walk their keys again and again (for --duration/--ops) instead of once.
std::unique_ptr<Workload> make_fill(const ValueModel& values, uint64_t key_space, size_t value_min, size_t value_max);
std::unique_ptr<Workload> make_setget(const ValueModel& values, uint64_t key_space, size_t value_min, size_t value_max,
                                      bool cycle);
std::unique_ptr<Workload> make_sizes(const ValueModel& values, std::vector<size_t> sizes);
std::unique_ptr<Workload> make_setops(const ValueModel& values, WireProtocol protocol, uint64_t key_space,
                                      size_t value_min, size_t value_max, bool cycle);
// bench/mix: get (checked against the keyed values) or set, from the key chooser.
std::unique_ptr<Workload> make_mix(const ValueModel& values, const KeyChooser& keys, double get_ratio, size_t value_min,
                                   size_t value_max);
std::unique_ptr<Workload> make_blast(const ValueModel& values, const KeyChooser& keys, double read_ratio,
                                     size_t value_min, size_t value_max, unsigned multiget_max);

// setops appends/prepends pieces of at most this many bytes (ValueModel must allow for them).
inline constexpr size_t kPieceMax = 32;

}  // namespace rend::loadgen
