#include "loadgen/workload.h"

#include <charconv>
#include <string>

namespace rend::loadgen {

std::string_view op_name(OpKind kind) {
  switch (kind) {
    case OpKind::kGet: return "get";
    case OpKind::kMultiGet: return "multiget";
    case OpKind::kGat: return "gat";
    case OpKind::kSet: return "set";
    case OpKind::kAdd: return "add";
    case OpKind::kReplace: return "replace";
    case OpKind::kAppend: return "append";
    case OpKind::kPrepend: return "prepend";
    case OpKind::kDelete: return "delete";
    case OpKind::kTouch: return "touch";
    case OpKind::kIncr: return "incr";
    case OpKind::kDecr: return "decr";
  }
  return "?";
}

std::string_view outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kHit: return "hit";
    case Outcome::kMiss: return "miss";
    case Outcome::kPartial: return "partial hit";
    case Outcome::kStored: return "STORED";
    case Outcome::kNotStored: return "NOT_STORED";
    case Outcome::kExists: return "EXISTS";
    case Outcome::kNotFound: return "NOT_FOUND";
    case Outcome::kDeleted: return "DELETED";
    case Outcome::kTouched: return "TOUCHED";
    case Outcome::kNumber: return "number";
    case Outcome::kNonNumeric: return "non-numeric";
    case Outcome::kTooLarge: return "too large";
    case Outcome::kErrorReply: return "error reply";
  }
  return "?";
}

std::string outcome_set_names(OutcomeSet set) {
  std::string out;
  for (unsigned i = 0; i <= static_cast<unsigned>(Outcome::kErrorReply); ++i) {
    if ((set & (1u << i)) == 0) continue;
    if (!out.empty()) out += '|';
    out += outcome_name(static_cast<Outcome>(i));
  }
  return out;
}

namespace {

// Deterministic sizes in [lo, hi] for (key, version): a reader can recompute them.
size_t size_for(uint64_t key, uint64_t version, size_t lo, size_t hi) {
  if (hi <= lo) return lo;
  return lo + mix64(key * 0x9e3779b97f4a7c15ULL + 0x73697a65, version) % (hi - lo + 1);
}

void partition(Cursor& c, uint64_t n, uint64_t index, uint64_t count) {
  c.begin = static_cast<uint64_t>(static_cast<unsigned __int128>(n) * index / count);
  c.end = static_cast<uint64_t>(static_cast<unsigned __int128>(n) * (index + 1) / count);
  c.next = c.begin;
  c.pass = 0;
  c.step = 0;
}

void set_single(Op& op, OpKind kind, uint64_t key) {
  op.kind = kind;
  op.nkeys = 1;
  op.keys[0] = key;
}

void store(Op& op, OpKind kind, uint64_t key, std::string_view value, OutcomeSet accept) {
  set_single(op, kind, key);
  op.value = value;
  op.flags = ValueModel::flags(key);
  op.accept = accept;
}

void read_exact(Op& op, uint64_t key, std::initializer_list<Segment> segments) {
  set_single(op, OpKind::kGet, key);
  op.accept = bit(Outcome::kHit);
  op.check = Check::kExact;
  op.nsegments = 0;
  for (const Segment& s : segments) op.segments[op.nsegments++] = s;
}

// Moves to the next key of the connection's range; false when the range is done (and not cycling).
bool advance(Cursor& c, bool cycle) {
  ++c.next;
  c.step = 0;
  if (c.next < c.end) return true;
  if (!cycle) return false;
  c.next = c.begin;
  ++c.pass;
  return true;
}

class Fill final : public Workload {
 public:
  Fill(const ValueModel& values, uint64_t n, size_t lo, size_t hi) : values_(values), n_(n), lo_(lo), hi_(hi) {}
  std::string_view name() const override { return "fill"; }
  void start(Cursor& c, uint64_t index, uint64_t count) const override { partition(c, n_, index, count); }
  bool next(Cursor& c, Rng&, Op& op) const override {
    if (c.next >= c.end) return false;
    const uint64_t key = c.next++;
    store(op, OpKind::kSet, key, values_.value(key, 0, size_for(key, 0, lo_, hi_)), bit(Outcome::kStored));
    return true;
  }

 private:
  const ValueModel& values_;
  uint64_t n_;
  size_t lo_, hi_;
};

class SetGet final : public Workload {
 public:
  SetGet(const ValueModel& values, uint64_t n, size_t lo, size_t hi, bool cycle)
      : values_(values), n_(n), lo_(lo), hi_(hi), cycle_(cycle) {}
  std::string_view name() const override { return "setget"; }
  void start(Cursor& c, uint64_t index, uint64_t count) const override { partition(c, n_, index, count); }
  bool next(Cursor& c, Rng&, Op& op) const override {
    if (c.next >= c.end) return false;
    const uint64_t key = c.next;
    const uint64_t version = values_.nonce() + c.pass;
    const auto size = static_cast<uint32_t>(size_for(key, version, lo_, hi_));
    if (c.step == 0) {
      store(op, OpKind::kSet, key, values_.value(key, version, size), bit(Outcome::kStored));
      c.step = 1;
      return true;
    }
    read_exact(op, key, {Segment{key, version, size}});
    if (!advance(c, cycle_)) c.next = c.end;
    return true;
  }

 private:
  const ValueModel& values_;
  uint64_t n_;
  size_t lo_, hi_;
  bool cycle_;
};

class Sizes final : public Workload {
 public:
  Sizes(const ValueModel& values, std::vector<size_t> sizes) : values_(values), sizes_(std::move(sizes)) {}
  std::string_view name() const override { return "sizes"; }
  void start(Cursor& c, uint64_t index, uint64_t count) const override {
    c.begin = index;
    c.next = index;
    c.end = sizes_.size();
    c.stride = count;
    c.step = 0;
  }
  bool next(Cursor& c, Rng&, Op& op) const override {
    if (c.next >= c.end) return false;
    const uint64_t key = c.next;
    const auto size = static_cast<uint32_t>(sizes_[key]);
    const uint64_t version = values_.nonce();
    if (c.step == 0) {
      store(op, OpKind::kSet, key, values_.value(key, version, size), bit(Outcome::kStored));
      c.step = 1;
      return true;
    }
    read_exact(op, key, {Segment{key, version, size}});
    c.next += c.stride;
    c.step = 0;
    return true;
  }

 private:
  const ValueModel& values_;
  std::vector<size_t> sizes_;
};

// Per key: a script that walks add/replace/append/prepend/set through every state they care
// about, each with the one reply memcached gives, and reads the value back after every change.
class SetOps final : public Workload {
 public:
  SetOps(const ValueModel& values, WireProtocol protocol, uint64_t n, size_t lo, size_t hi, bool cycle)
      : values_(values), binary_(protocol == WireProtocol::kBinary), n_(n), lo_(lo), hi_(hi), cycle_(cycle) {}
  std::string_view name() const override { return "setops"; }
  void start(Cursor& c, uint64_t index, uint64_t count) const override { partition(c, n_, index, count); }

  bool next(Cursor& c, Rng&, Op& op) const override {
    if (c.next >= c.end) return false;
    const uint64_t key = c.next;
    const uint64_t v = values_.nonce() + c.pass * 8;
    const Segment a{key, v + 1, static_cast<uint32_t>(size_for(key, v + 1, lo_, hi_))};
    const Segment b{key, v + 2, static_cast<uint32_t>(size_for(key, v + 2, lo_, hi_))};
    const Segment p{key, v + 3, static_cast<uint32_t>(size_for(key, v + 3, 1, kPieceMax))};
    const Segment s{key, v + 4, static_cast<uint32_t>(size_for(key, v + 4, 1, kPieceMax))};
    const Segment d{key, v + 5, static_cast<uint32_t>(size_for(key, v + 5, lo_, hi_))};
    auto bytes = [&](const Segment& g) { return values_.value(g.key, g.version, g.size); };
    // memcached answers a failed add/replace with NOT_STORED in text (NS in meta), but with
    // "exists" / "not found" in binary; append/prepend to a missing key are NOT_STORED in all.
    const OutcomeSet replace_missing = bit(binary_ ? Outcome::kNotFound : Outcome::kNotStored);
    const OutcomeSet add_existing = bit(binary_ ? Outcome::kExists : Outcome::kNotStored);
    const OutcomeSet stored = bit(Outcome::kStored);
    switch (c.step) {
      case 0:  // a clean slate, whatever an earlier run left
        set_single(op, OpKind::kDelete, key);
        op.accept = bit(Outcome::kDeleted) | bit(Outcome::kNotFound);
        break;
      case 1:
        set_single(op, OpKind::kGet, key);
        op.accept = bit(Outcome::kMiss);
        break;
      case 2: store(op, OpKind::kReplace, key, bytes(a), replace_missing); break;
      case 3: store(op, OpKind::kAppend, key, bytes(s), bit(Outcome::kNotStored)); break;
      case 4: store(op, OpKind::kPrepend, key, bytes(p), bit(Outcome::kNotStored)); break;
      case 5: store(op, OpKind::kAdd, key, bytes(a), stored); break;
      case 6: store(op, OpKind::kAdd, key, bytes(b), add_existing); break;
      case 7: read_exact(op, key, {a}); break;
      case 8: store(op, OpKind::kReplace, key, bytes(b), stored); break;
      case 9: read_exact(op, key, {b}); break;
      case 10: store(op, OpKind::kAppend, key, bytes(s), stored); break;
      case 11: store(op, OpKind::kPrepend, key, bytes(p), stored); break;
      case 12: read_exact(op, key, {p, b, s}); break;
      case 13: store(op, OpKind::kSet, key, bytes(d), stored); break;
      case 14: read_exact(op, key, {d}); break;
      case 15:
        set_single(op, OpKind::kDelete, key);
        op.accept = bit(Outcome::kDeleted);
        break;
      default:
        set_single(op, OpKind::kGet, key);
        op.accept = bit(Outcome::kMiss);
        if (!advance(c, cycle_)) c.next = c.end;
        return true;
    }
    ++c.step;
    return true;
  }

 private:
  const ValueModel& values_;
  bool binary_;
  uint64_t n_;
  size_t lo_, hi_;
  bool cycle_;
};

class Mix final : public Workload {
 public:
  Mix(const ValueModel& values, const KeyChooser& keys, double get_ratio, size_t lo, size_t hi)
      : values_(values), keys_(keys), get_ratio_(get_ratio), lo_(lo), hi_(hi) {}
  std::string_view name() const override { return "mix"; }
  void start(Cursor& c, uint64_t, uint64_t) const override { c = Cursor{}; }
  bool next(Cursor&, Rng& rng, Op& op) const override {
    const uint64_t key = keys_.pick(rng);
    if (rng.unit() < get_ratio_) {
      set_single(op, OpKind::kGet, key);
      op.accept = bit(Outcome::kHit) | bit(Outcome::kMiss);
      op.check = Check::kKeyed;
      op.size_min = static_cast<uint32_t>(lo_);
      op.size_max = static_cast<uint32_t>(hi_);
    } else {
      store(op, OpKind::kSet, key, values_.value(key, 0, rng.between(lo_, hi_)), bit(Outcome::kStored));
    }
    return true;
  }

 private:
  const ValueModel& values_;
  const KeyChooser& keys_;
  double get_ratio_;
  size_t lo_, hi_;
};

class Blast final : public Workload {
 public:
  Blast(const ValueModel& values, const KeyChooser& keys, double read_ratio, size_t lo, size_t hi,
        unsigned multiget_max)
      : values_(values), keys_(keys), read_ratio_(read_ratio), lo_(lo), hi_(hi), multiget_max_(multiget_max) {}
  std::string_view name() const override { return "blast"; }
  void start(Cursor& c, uint64_t, uint64_t) const override { c = Cursor{}; }

  bool next(Cursor& c, Rng& rng, Op& op) const override {
    static constexpr OpKind kReads[] = {OpKind::kGet, OpKind::kMultiGet, OpKind::kGat};
    static constexpr OpKind kWrites[] = {OpKind::kSet,    OpKind::kAdd,     OpKind::kReplace,
                                         OpKind::kAppend, OpKind::kPrepend, OpKind::kDelete,
                                         OpKind::kTouch,  OpKind::kIncr,    OpKind::kDecr};
    const double u = rng.unit();
    OpKind kind;
    if (u < read_ratio_) {
      kind = kReads[std::min<size_t>(2, static_cast<size_t>(u / read_ratio_ * 3))];
    } else {
      kind = kWrites[std::min<size_t>(8, static_cast<size_t>((u - read_ratio_) / (1 - read_ratio_) * 9))];
    }
    uint64_t key = keys_.pick(rng);
    // Every 8th key is a counter: stores put numbers there and incr/decr go there, so they
    // mostly find numbers (a non-numeric value is a correct outcome too).
    const bool counter = key % kCounterEvery == 0;
    op.check = Check::kNone;
    switch (kind) {
      case OpKind::kGet:
      case OpKind::kGat:
        set_single(op, kind, key);
        op.exptime = kind == OpKind::kGat ? 3600 : 0;
        op.accept = bit(Outcome::kHit) | bit(Outcome::kMiss);
        op.check = Check::kFlags;
        break;
      case OpKind::kMultiGet: {
        op.kind = kind;
        op.nkeys = static_cast<uint8_t>(rng.between(2, multiget_max_));
        op.keys[0] = key;
        for (unsigned i = 1; i < op.nkeys; ++i) op.keys[i] = keys_.pick(rng);
        op.accept = bit(Outcome::kHit) | bit(Outcome::kMiss) | bit(Outcome::kPartial);
        op.check = Check::kFlags;
        break;
      }
      case OpKind::kSet:
      case OpKind::kAdd:
      case OpKind::kReplace: {
        std::string_view value;
        if (counter) {
          auto [end, ec] = std::to_chars(c.number, c.number + sizeof c.number, rng.below(1000000));
          (void)ec;
          value = std::string_view(c.number, static_cast<size_t>(end - c.number));
        } else {
          value = values_.value(key, 0, rng.between(lo_, hi_));
        }
        OutcomeSet accept = bit(Outcome::kStored);
        if (kind == OpKind::kAdd) accept |= bit(Outcome::kNotStored) | bit(Outcome::kExists);
        if (kind == OpKind::kReplace) accept |= bit(Outcome::kNotStored) | bit(Outcome::kNotFound);
        store(op, kind, key, value, accept);
        break;
      }
      case OpKind::kAppend:
      case OpKind::kPrepend:
        store(op, kind, key, values_.value(key, rng.next(), rng.between(1, 16)),
              bit(Outcome::kStored) | bit(Outcome::kNotStored));
        break;
      case OpKind::kDelete:
        set_single(op, kind, key);
        op.accept = bit(Outcome::kDeleted) | bit(Outcome::kNotFound);
        break;
      case OpKind::kTouch:
        set_single(op, kind, key);
        op.exptime = 3600;
        op.accept = bit(Outcome::kTouched) | bit(Outcome::kNotFound);
        break;
      case OpKind::kIncr:
      case OpKind::kDecr:
        set_single(op, kind, key - key % kCounterEvery);
        op.delta = rng.between(1, 100);
        op.accept = bit(Outcome::kNumber) | bit(Outcome::kNotFound) | bit(Outcome::kNonNumeric);
        break;
    }
    return true;
  }

 private:
  static constexpr uint64_t kCounterEvery = 8;
  const ValueModel& values_;
  const KeyChooser& keys_;
  double read_ratio_;
  size_t lo_, hi_;
  unsigned multiget_max_;
};

}  // namespace

std::unique_ptr<Workload> make_fill(const ValueModel& values, uint64_t key_space, size_t value_min, size_t value_max) {
  return std::make_unique<Fill>(values, key_space, value_min, value_max);
}
std::unique_ptr<Workload> make_setget(const ValueModel& values, uint64_t key_space, size_t value_min, size_t value_max,
                                      bool cycle) {
  return std::make_unique<SetGet>(values, key_space, value_min, value_max, cycle);
}
std::unique_ptr<Workload> make_sizes(const ValueModel& values, std::vector<size_t> sizes) {
  return std::make_unique<Sizes>(values, std::move(sizes));
}
std::unique_ptr<Workload> make_setops(const ValueModel& values, WireProtocol protocol, uint64_t key_space,
                                      size_t value_min, size_t value_max, bool cycle) {
  return std::make_unique<SetOps>(values, protocol, key_space, value_min, value_max, cycle);
}
std::unique_ptr<Workload> make_mix(const ValueModel& values, const KeyChooser& keys, double get_ratio, size_t value_min,
                                   size_t value_max) {
  return std::make_unique<Mix>(values, keys, get_ratio, value_min, value_max);
}
std::unique_ptr<Workload> make_blast(const ValueModel& values, const KeyChooser& keys, double read_ratio,
                                     size_t value_min, size_t value_max, unsigned multiget_max) {
  return std::make_unique<Blast>(values, keys, read_ratio, value_min, value_max, multiget_max);
}

}  // namespace rend::loadgen
