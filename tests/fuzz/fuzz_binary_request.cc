// The binary request parser (bytes from any client): consumption and views stay inside the
// input, and a parsed request composes back (compose_binary_request) into a packet that parses to
// the same request.
#include <span>
#include <string>

#include "common/protocol/binary_parser.h"
#include "common/protocol/request_compose.h"
#include "tests/fuzz/fuzz_check.h"

using namespace rend::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kMaxItem = 1024 * 1024;
  const std::span<const char> input(reinterpret_cast<const char*>(data), size);
  {
    // As rend-l2 parses a worker's requests: its private meta opcode too.
    const ParseResult p = parse_binary_request(input, kMaxItem, true);
    if (p.status == ParseStatus::kRequest) {
      FUZZ_CHECK(p.consumed >= bin::kHeaderSize && p.consumed <= size);
      FUZZ_CHECK(within(p.request.key, input) && within(p.request.value, input) && within(p.request.meta_flags, input));
    } else {
      FUZZ_CHECK(p.status != ParseStatus::kNeedMore || p.consumed == 0);
    }
  }
  const ParseResult r = parse_binary_request(input, kMaxItem);
  if (r.status != ParseStatus::kRequest) {
    FUZZ_CHECK(r.status != ParseStatus::kNeedMore || r.consumed == 0);
    return 0;
  }
  FUZZ_CHECK(r.consumed >= bin::kHeaderSize && r.consumed <= size);
  const Request& q = r.request;
  FUZZ_CHECK(within(q.key, input) && within(q.value, input));
  FUZZ_CHECK(!q.track_races);  // a client can never ask rend-l2 to track races
  switch (q.command) {
    case Command::kError:
    case Command::kUnknown:
    case Command::kTooLarge:
    case Command::kQuit:
    case Command::kStats: return 0;  // answered locally or composed differently
    default: break;
  }
  std::string again;
  compose_binary_request(q, again);
  const ParseResult r2 = parse_binary_request(std::span<const char>(again.data(), again.size()), kMaxItem);
  FUZZ_CHECK(r2.status == ParseStatus::kRequest && r2.consumed == again.size());
  const Request& q2 = r2.request;
  FUZZ_CHECK(q2.command == q.command && q2.opcode == q.opcode && q2.key == q.key && q2.value == q.value);
  FUZZ_CHECK(q2.flags == q.flags && q2.exptime == q.exptime && q2.cas == q.cas && q2.opaque == q.opaque);
  FUZZ_CHECK(q2.delta == q.delta && q2.initial == q.initial && q2.quiet == q.quiet);
  return 0;
}
