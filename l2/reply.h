// rend-l2's replies, byte for byte as memcached 1.6.18 sends them, plus Rend's GetE.
//
// Pure composition on top of common/protocol/reply_compose.h: the Engine decides outcomes, these
// functions word them. Everything appends to `out`; a quiet request that succeeded (or a quiet
// read that missed) appends nothing.
#pragma once

#include <string>
#include <string_view>

#include "common/item_rules.h"
#include "common/protocol/request.h"

namespace rend::l2 {

// A binary single-key read: get/getq/getk/getkq, gat/gatq/gatk/gatkq, touch, GetE/GetEQ.
// `hit` is nullptr on a miss; `data` is the hit's value.
void append_binary_read(std::string& out, const proto::Request& r, const ItemMeta* hit, std::string_view data);

// The reply to a command that went through apply_change() (not the text multi-key gat, whose
// VALUE lines the Engine writes itself).
void append_change_reply(std::string& out, const proto::Request& r, const Change& c);

// The storage layer failed: memcached-style SERVER_ERROR (text) / Internal error (binary).
void append_failure(std::string& out, const proto::Request& r, std::string_view what);

}  // namespace rend::l2
