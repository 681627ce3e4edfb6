// How a failed backend request is reported to the client (memcached has no word for it; these
// are the closest memcached-style replies).
#pragma once

#include <cstdint>
#include <string_view>

#include "common/protocol/binary_format.h"
#include "common/protocol/reply_compose.h"
#include "worker/op.h"

namespace rend::worker {

std::string_view text_failure(BackendFailure why);
uint16_t binary_failure(BackendFailure why);

}  // namespace rend::worker
