// The replies a server composes without looking at any item, the same from a worker and from
// rend-l2: version, verbosity, noop, quit, a value too large, the parser's errors, and an
// unknown command. Worded as memcached 1.6.18 words them.
#pragma once

#include <string>

#include "common/protocol/request.h"

namespace rend {

void append_local_reply(std::string& out, const proto::Request& r);

}  // namespace rend
