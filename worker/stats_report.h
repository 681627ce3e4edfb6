// The `stats` reply: rend's own counters summed over every worker (from the shared stats block),
// in memcached's format and with memcached's names where the meaning is the same.
#pragma once

#include <cstdint>
#include <string>

namespace rend::worker {

class Worker;

void append_text_stats(std::string& out, const Worker& worker);
void append_binary_stats(std::string& out, const Worker& worker, uint8_t opcode, uint32_t opaque);

}  // namespace rend::worker
