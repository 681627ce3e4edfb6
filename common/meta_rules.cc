#include "common/meta_rules.h"

#include <fmt/format.h>

#include "common/protocol/item_size.h"

namespace rend {

using proto::Command;
using proto::MetaOptions;

namespace {

// memcached's ITEM_UPDATE_INTERVAL: a read moves an item's last-access time at most this often.
constexpr uint32_t kAccessUpdateInterval = 60;

bool has_mark(const ItemMeta& m, ItemMark mark) { return (m.marks & mark) != 0; }
uint32_t last_access(const ItemMeta& m) { return m.last_access != 0 ? m.last_access : m.stored_at; }

void append_key(std::string& out, std::string_view key, bool binary) {
  out += " k";
  if (!binary) {
    out.append(key);
    return;
  }
  out += proto::base64_encode(key);
  out += " b";
}

// " <O token>" and " k<key>" where the request asked, in its order (ms, md, ma without an item).
void append_echo_flags(std::string& out, std::string_view flags, std::string_view key, bool key_binary,
                       uint64_t cas = 0, bool with_cas = false) {
  proto::for_each_meta_flag(flags, [&](std::string_view t) {
    if (t[0] == 'O') {
      out += ' ';
      out.append(t);
    } else if (t[0] == 'k') {
      append_key(out, key, key_binary);
    } else if (t[0] == 'c' && with_cas) {
      out += fmt::format(" c{}", cas);
    }
  });
}

MetaReply error_reply(std::string_view line) {
  MetaReply r;
  r.code = MetaCode::kError;
  r.bytes.append(line).append("\r\n");
  return r;
}

MetaReply status_reply(std::string_view code, MetaCode kind, const MetaRequest& q, bool key_binary,
                       bool suppressible = false) {
  MetaReply r;
  r.code = kind;
  r.suppressible = suppressible;
  r.bytes.append(code);
  append_echo_flags(r.bytes, q.flags, q.key, key_binary);
  r.bytes += "\r\n";
  return r;
}

std::string ttl_text(uint32_t expiry, uint32_t now) {
  if (expiry == 0) return "-1";
  return fmt::format("{}", expiry > now ? expiry - now : 0);
}

// ---- mg -------------------------------------------------------------------------------------

MetaChange mg_miss(const MetaRequest& q) {
  MetaChange c;
  c.reply = status_reply("EN", MetaCode::kMiss, q, q.options->base64, true);
  return c;
}

MetaChange meta_get(const MetaRequest& q, const Item* current, uint32_t now, const CasFn& next_cas) {
  const MetaOptions& o = *q.options;
  Item it;
  bool created = false;
  if (current != nullptr) {
    it = *current;
  } else if (o.vivify) {
    it.meta.cas = next_cas();  // its TTL is set where N stands among the flags
    it.meta.stored_at = now;
    // memcached does not mark an item mg creates as having a binary key: k echoes it decoded.
    created = true;
  } else {
    return mg_miss(q);
  }
  const ItemMeta before = it.meta;
  bool won = false;
  bool changed = created;
  bool cut = false;  // an O too long: memcached stops there, before any win is marked
  std::string flags_out;
  proto::for_each_meta_flag(q.flags, [&](std::string_view t) {
    if (cut || (cut = t[0] == 'O' && t.size() > proto::kMetaMaxOpaque)) return;
    switch (t[0]) {
      case 'T':
        it.meta.expiry = absolute_expiry(o.exptime, now);
        changed = true;
        break;
      case 'N':
        if (created) it.meta.expiry = absolute_expiry(o.vivify_exptime, now);
        won = won || created;
        break;
      case 'R':
        if (!has_mark(before, kMarkTokenSent) && !created && it.meta.expiry != 0 &&
            it.meta.expiry < absolute_expiry(o.recache_exptime, now)) {
          won = true;
        }
        break;
      case 's': flags_out += fmt::format(" s{}", it.data.size()); break;
      case 't': flags_out += " t" + ttl_text(it.meta.expiry, now); break;
      case 'c': flags_out += fmt::format(" c{}", it.meta.cas); break;
      case 'f': flags_out += fmt::format(" f{}", it.meta.flags); break;
      case 'l': flags_out += fmt::format(" l{}", now - std::min(now, last_access(before))); break;
      case 'h': flags_out += has_mark(before, kMarkFetched) ? " h1" : " h0"; break;
      case 'O':
        flags_out += ' ';
        flags_out.append(t);
        break;
      case 'k': append_key(flags_out, q.key, has_mark(it.meta, kMarkKeyBinary)); break;
      default: break;
    }
  });
  if (has_mark(it.meta, kMarkTokenSent)) flags_out += " Z";
  if (has_mark(it.meta, kMarkStale)) {
    flags_out += " X";
    if (!has_mark(it.meta, kMarkTokenSent)) won = true;
  }
  if (won && !cut) {
    flags_out += " W";
    it.meta.marks |= kMarkTokenSent;
    changed = true;
  }
  if (!o.no_update) {
    // memcached's bump: the first read marks the item fetched, later ones move its access time.
    if (!has_mark(it.meta, kMarkFetched)) {
      it.meta.marks |= kMarkFetched;
      changed = true;
    } else if (now >= last_access(it.meta) + kAccessUpdateInterval) {
      it.meta.last_access = now;
      changed = true;
    }
  }
  MetaChange c;
  if (changed) c.write = Change::Write::kPut, c.item = it;
  MetaReply& r = c.reply;
  r.code = MetaCode::kHit;
  r.has_item = true;
  r.meta = it.meta;
  r.clean = !created && item_copyable(it.meta);
  r.bytes = o.return_value ? fmt::format("VA {}", it.data.size()) : std::string("HD");
  r.bytes += flags_out;
  r.bytes += "\r\n";
  if (o.return_value) r.bytes.append(it.data).append("\r\n");
  return c;
}

// ---- ms -------------------------------------------------------------------------------------

enum class StoreMode : uint8_t { kSet, kAdd, kAppend, kPrepend, kReplace, kCas };

StoreMode store_mode(const MetaOptions& o) {
  StoreMode m = StoreMode::kSet;
  switch (o.mode) {
    case 'E': m = StoreMode::kAdd; break;
    case 'A': m = StoreMode::kAppend; break;
    case 'P': m = StoreMode::kPrepend; break;
    case 'R': m = StoreMode::kReplace; break;
    default: break;
  }
  if (o.has_cas && (m == StoreMode::kSet || m == StoreMode::kReplace)) m = StoreMode::kCas;
  return m;
}

MetaChange ms_reply(const MetaRequest& q, std::string_view code, MetaCode kind, const Item* stored, bool key_binary) {
  MetaChange c;
  MetaReply& r = c.reply;
  r.code = kind;
  r.suppressible = kind == MetaCode::kStored;
  r.bytes.append(code);
  append_echo_flags(r.bytes, q.flags, q.key, key_binary, stored != nullptr ? stored->meta.cas : 0, true);
  r.bytes += "\r\n";
  if (stored != nullptr) {
    r.has_item = true;
    r.meta = stored->meta;
    r.clean = item_copyable(stored->meta);
  }
  return c;
}

MetaChange meta_set(const MetaRequest& q, const Item* current, uint32_t now, size_t max_item_size,
                    const CasFn& next_cas) {
  const MetaOptions& o = *q.options;
  const StoreMode mode = store_mode(o);
  Item it;
  it.meta.flags = o.client_flags;
  it.meta.expiry = o.new_ttl ? absolute_expiry(o.exptime, now) : 0;
  it.meta.stored_at = now;
  if (o.base64) it.meta.marks |= kMarkKeyBinary;
  const bool kb = o.base64;
  switch (mode) {
    case StoreMode::kAdd:
      if (current != nullptr) return ms_reply(q, "NS", MetaCode::kNotStored, nullptr, kb);
      break;
    case StoreMode::kReplace:
      if (current == nullptr) return ms_reply(q, "NS", MetaCode::kNotStored, nullptr, kb);
      break;
    case StoreMode::kAppend:
    case StoreMode::kPrepend: {
      if (current == nullptr) return ms_reply(q, "NS", MetaCode::kNotStored, nullptr, kb);
      if (o.has_cas && o.cas != 0 && o.cas != current->meta.cas)
        return ms_reply(q, "EX", MetaCode::kExists, nullptr, kb);
      if (!proto::fits_memcached_item(q.key.size(), current->meta.flags, current->data.size() + q.value.size(),
                                      max_item_size))
        return ms_reply(q, "NS", MetaCode::kNotStored, nullptr, kb);
      // The old item's flags and TTL stay, as in memcached.
      it.meta.flags = current->meta.flags;
      it.meta.expiry = current->meta.expiry;
      it.data =
          mode == StoreMode::kAppend ? current->data + std::string(q.value) : std::string(q.value) + current->data;
      break;
    }
    case StoreMode::kCas:
      if (current == nullptr) return ms_reply(q, "NF", MetaCode::kNotFound, nullptr, kb);
      if (o.cas != current->meta.cas) {
        // A CAS of 0 is never older: memcached answers EX to it, I or not.
        if (!(o.invalidate && o.cas != 0 && o.cas < current->meta.cas))
          return ms_reply(q, "EX", MetaCode::kExists, nullptr, kb);
        // An older value is accepted as stale: the TTL and a win token stay.
        it.meta.expiry = current->meta.expiry;
        it.meta.marks |= kMarkStale | (current->meta.marks & kMarkTokenSent);
      }
      break;
    default: break;
  }
  if (mode != StoreMode::kAppend && mode != StoreMode::kPrepend) it.data.assign(q.value);
  it.meta.cas = next_cas();
  MetaChange c = ms_reply(q, "HD", MetaCode::kStored, &it, kb);
  c.write = Change::Write::kPut;
  c.item = std::move(it);
  return c;
}

// ---- md -------------------------------------------------------------------------------------

MetaChange meta_delete(const MetaRequest& q, const Item* current, uint32_t now, const CasFn& next_cas) {
  const MetaOptions& o = *q.options;
  MetaChange c;
  if (current == nullptr) {
    c.reply = status_reply("NF", MetaCode::kNotFound, q, o.base64);
    return c;
  }
  if (o.has_cas && current->meta.cas != o.cas) {
    c.reply = status_reply("EX", MetaCode::kExists, q, o.base64);
    return c;
  }
  c.reply = status_reply("HD", MetaCode::kDeleted, q, o.base64, true);
  if (!o.invalidate) {
    c.write = Change::Write::kDelete;
    return c;
  }
  // Marked stale instead of removed: a new CAS, the next reader wins the token.
  c.item = *current;
  if (o.new_ttl) c.item.meta.expiry = absolute_expiry(o.exptime, now);
  c.item.meta.marks = (c.item.meta.marks | kMarkStale) & ~kMarkTokenSent;
  c.item.meta.cas = next_cas();
  c.write = Change::Write::kPut;
  return c;
}

// ---- ma -------------------------------------------------------------------------------------

// The reply for an item ma changed or created. T and N set the TTL where they stand among the
// flags, so a `t` before them reports the TTL before.
MetaChange ma_item_reply(const MetaRequest& q, Item it, std::string_view number, bool created, uint32_t now) {
  const MetaOptions& o = *q.options;
  MetaChange c;
  MetaReply& r = c.reply;
  r.code = MetaCode::kHit;
  r.suppressible = !created;  // q hides a counter's new value, not an item it created
  r.bytes = o.return_value ? fmt::format("VA {}", number.size()) : std::string("HD");
  bool cut = false;  // an O too long: memcached stops there (a T or N after it is not applied)
  proto::for_each_meta_flag(q.flags, [&](std::string_view t) {
    if (cut || (cut = t[0] == 'O' && t.size() > proto::kMetaMaxOpaque)) return;
    switch (t[0]) {
      case 'c': r.bytes += fmt::format(" c{}", it.meta.cas); break;
      case 't': r.bytes += " t" + ttl_text(it.meta.expiry, now); break;
      case 'T': it.meta.expiry = absolute_expiry(o.exptime, now); break;
      case 'N':
        if (created) it.meta.expiry = absolute_expiry(o.vivify_exptime, now);
        break;
      case 'O':
        r.bytes += ' ';
        r.bytes.append(t);
        break;
      case 'k': append_key(r.bytes, q.key, o.base64); break;
      default: break;
    }
  });
  if (o.return_value) r.bytes.append("\r\n").append(number);
  r.bytes += "\r\n";
  r.has_item = true;
  r.meta = it.meta;
  c.write = Change::Write::kPut;
  c.item = std::move(it);
  return c;
}

MetaChange meta_arithmetic(const MetaRequest& q, const Item* current, uint32_t now, const CasFn& next_cas) {
  const MetaOptions& o = *q.options;
  const bool incr = o.mode != 'D' && o.mode != '-';
  if (current == nullptr) {
    if (!o.vivify) return MetaChange{Change::Write::kNone, {}, status_reply("NF", MetaCode::kNotFound, q, o.base64)};
    Item it;
    it.data = std::to_string(o.initial);
    it.meta.cas = next_cas();
    it.meta.stored_at = now;
    const std::string number = it.data;
    return ma_item_reply(q, std::move(it), number, true, now);
  }
  // memcached refuses an empty value as non-numeric before it compares the CAS, any other value
  // after.
  const MetaChange non_numeric{
      Change::Write::kNone, {}, error_reply("CLIENT_ERROR cannot increment or decrement non-numeric value")};
  if (current->data.empty()) return non_numeric;
  if (o.has_cas && o.cas != 0 && o.cas != current->meta.cas) {
    return MetaChange{Change::Write::kNone, {}, status_reply("EX", MetaCode::kExists, q, o.base64)};
  }
  uint64_t value = 0;
  if (!apply_delta(current->data, incr, o.delta, value)) return non_numeric;
  Item it;
  it.meta = current->meta;
  it.meta.cas = next_cas();
  it.data = counter_text(value, current->data.size());
  if (it.data.size() <= current->data.size()) {
    // Changed in place, as memcached does when the number fits: flags, TTL and marks stay.
    return ma_item_reply(q, std::move(it), std::to_string(value), false, now);
  }
  // A longer number: memcached stores a new item with the old one's flags and TTL. It is new to
  // the LRU (not fetched, no stale mark or win token, and its key no longer marked binary), and
  // this ma's T or N only reaches its reply.
  it.meta.marks = 0;
  it.meta.stored_at = now;
  it.meta.last_access = 0;
  MetaChange c = ma_item_reply(q, it, std::to_string(value), false, now);
  c.item = std::move(it);
  c.reply.meta = c.item.meta;
  return c;
}

}  // namespace

MetaChange apply_meta(const MetaRequest& q, const Item* current, uint32_t now, size_t max_item_size,
                      const CasFn& next_cas) {
  MetaChange c;
  switch (q.command) {
    case Command::kMetaGet: c = meta_get(q, current, now, next_cas); break;
    case Command::kMetaSet: c = meta_set(q, current, now, max_item_size, next_cas); break;
    case Command::kMetaDelete: c = meta_delete(q, current, now, next_cas); break;
    case Command::kMetaArithmetic: c = meta_arithmetic(q, current, now, next_cas); break;
    default: c.reply = error_reply("ERROR"); return c;
  }
  // The command ran (its change stands); only an error of its own comes before this one.
  if (q.options->opaque_too_long && c.reply.code != MetaCode::kError) {
    c.reply = error_reply("CLIENT_ERROR opaque token too long");
  }
  return c;
}

std::string meta_debug_reply(std::string_view key, const Item* current, uint32_t now, size_t stored_size) {
  if (current == nullptr) return "EN\r\n";
  const ItemMeta& m = current->meta;
  std::string out = "ME ";
  out += has_mark(m, kMarkKeyBinary) ? proto::base64_encode(key) : std::string(key);
  // memcached prints exp as (now - expiry): negative while the item lives.
  const int64_t exp = m.expiry == 0 ? -1 : static_cast<int64_t>(now) - static_cast<int64_t>(m.expiry);
  out += fmt::format(" exp={} la={} cas={} fetch={} cls=0 size={}\r\n", exp, now - std::min(now, last_access(m)), m.cas,
                     has_mark(m, kMarkFetched) ? "yes" : "no", stored_size);
  return out;
}

bool item_copyable(const ItemMeta& meta) { return (meta.marks & (kMarkStale | kMarkTokenSent | kMarkKeyBinary)) == 0; }

bool mg_answerable_from_copy(const MetaOptions& o) {
  return !o.vivify && !o.recache && !o.new_ttl && !o.return_ttl && !o.return_hit && !o.return_last_access;
}

}  // namespace rend
