// The text request parser (bytes from any client): never reads past its input, never consumes
// more than it was given, views stay inside the input, and a parsed key command composes back
// (compose_text_request) into text that parses to the same request. A meta request's flags are
// inside the input and are ones memcached accepts, and its key decodes.
#include <span>
#include <string>

#include "common/protocol/meta_command.h"
#include "common/protocol/request_compose.h"
#include "common/protocol/text_parser.h"
#include "tests/fuzz/fuzz_check.h"

using namespace rend::proto;

namespace {

constexpr size_t kMaxItem = 1024 * 1024;

bool composable(Command c) {
  switch (c) {
    case Command::kGet:
    case Command::kGets:
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
    case Command::kIncr:
    case Command::kDecr: return true;
    default: return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const char> input(reinterpret_cast<const char*>(data), size);
  const ParseResult r = parse_text(input, kMaxItem);
  if (r.status != ParseStatus::kRequest) {
    FUZZ_CHECK(r.status != ParseStatus::kNeedMore || r.consumed == 0);
    return 0;
  }
  FUZZ_CHECK(r.consumed > 0 && r.consumed <= size);
  const Request& q = r.request;
  FUZZ_CHECK(within(q.key, input) && within(q.keys, input) && within(q.value, input));
  FUZZ_CHECK(q.key.size() <= kMaxKeyLength);
  FUZZ_CHECK(within(q.meta_flags, input));
  if (q.command >= Command::kMetaGet && q.command <= Command::kMetaArithmetic && q.command != Command::kMetaNoop) {
    MetaOptions o;
    std::string_view error;
    FUZZ_CHECK(parse_meta_options(q.command, q.key, q.meta_flags, o, error));
    FUZZ_CHECK(meta_key(q.key, o.base64).has_value());
  }
  if (!composable(q.command)) return 0;
  std::string again;
  compose_text_request(q, again);
  const ParseResult r2 = parse_text(std::span<const char>(again.data(), again.size()), kMaxItem);
  FUZZ_CHECK(r2.status == ParseStatus::kRequest && r2.consumed == again.size());
  const Request& q2 = r2.request;
  FUZZ_CHECK(q2.command == q.command && q2.key == q.key && q2.value == q.value && q2.quiet == q.quiet);
  FUZZ_CHECK(q2.flags == q.flags && q2.cas == q.cas && q2.delta == q.delta);
  return 0;
}
