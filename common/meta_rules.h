// memcached 1.6.18's meta commands (mg, ms, md, ma, me) as a pure function of the request and the
// key's current item, as item_rules.h is for the classic ones: the item to write (if any) and the
// exact reply memcached would send.
//
// rend-l2 executes every meta command of the tiered modes through this under the key's stripe
// lock, keeping the marks that must survive (stale, win token sent, hit before, last access) in its
// records; the worker composes an mg answered from an L1 copy with it too.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/item_rules.h"
#include "common/protocol/meta_command.h"

namespace rend {

// What the reply was, for the worker's tier steps.
enum class MetaCode : uint8_t {
  kHit,        // mg: VA/HD with the item; ma: VA/HD with the new value
  kMiss,       // mg/me: EN
  kStored,     // ms: HD
  kDeleted,    // md: HD
  kNotStored,  // NS
  kExists,     // EX
  kNotFound,   // NF
  kError,      // CLIENT_ERROR / SERVER_ERROR line
  kDebug,      // me: ME line
};

struct MetaReply {
  std::string bytes;  // the whole reply, as the client reads it
  MetaCode code = MetaCode::kError;
  bool suppressible = false;  // what q hides: mg EN, ms/md/ma HD
  // The item after the command (ms, ma, mg hits), for an L1 copy: its flags, expiry and CAS.
  bool has_item = false;
  ItemMeta meta;
  // item_copyable() and not a placeholder made by N: L1 may hold a copy of it.
  bool clean = false;
};

struct MetaChange {
  Change::Write write = Change::Write::kNone;
  Item item;  // kPut: the item to store
  MetaReply reply;
};

struct MetaRequest {
  proto::Command command = proto::Command::kMetaGet;
  const proto::MetaOptions* options = nullptr;
  std::string_view flags;  // the flag tokens as sent, whose order the reply follows
  std::string_view key;    // decoded
  std::string_view value;  // ms: the data block
};

// `current` is the live item (nullptr when absent, expired or flushed).
MetaChange apply_meta(const MetaRequest& request, const Item* current, uint32_t now, size_t max_item_size,
                      const CasFn& next_cas);

// me's line for `current` (nullptr: EN). `stored_size` stands for memcached's total item size.
std::string meta_debug_reply(std::string_view key, const Item* current, uint32_t now, size_t stored_size);

// Whether L1 may hold a copy of an item: not with marks a copy cannot show (stale, a win token
// sent, a key given in base64, which mg's k answers in base64).
bool item_copyable(const ItemMeta& meta);

// An item answered by mg from an L1 copy: the client's flags that read what L1 holds (no marks,
// TTL or access times) are all it asked for.
bool mg_answerable_from_copy(const proto::MetaOptions& options);

}  // namespace rend
