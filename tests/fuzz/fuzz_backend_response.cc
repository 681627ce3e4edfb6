// The parsers of what a backend (memcached, rend-l2) or a server sends back: binary responses
// (the worker's backend connections) and text replies (rend-loadgen). A peer can send anything:
// nothing is consumed past the input, the parts of a packet stay inside it and add up to its body.
#include <span>

#include "common/protocol/response_parser.h"
#include "tests/fuzz/fuzz_check.h"

using namespace rend::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const char> input(reinterpret_cast<const char*>(data), size);
  {
    BinaryResponse r;
    size_t used = 0;
    if (parse_binary_response(input, 64 * 1024, r, used) == ResponseParse::kOk) {
      FUZZ_CHECK(used >= bin::kHeaderSize && used <= size);
      FUZZ_CHECK(within(r.extras, input) && within(r.key, input) && within(r.value, input));
      FUZZ_CHECK(r.extras.size() + r.key.size() + r.value.size() == r.header.body_length);
      FUZZ_CHECK(used == bin::kHeaderSize + r.header.body_length);
    } else {
      FUZZ_CHECK(used == 0);
    }
  }
  size_t meta_at = 0;
  while (meta_at < size) {  // memcached's meta replies (l1only's meta connections)
    MetaResponse m;
    size_t used = 0;
    const std::span<const char> rest = input.subspan(meta_at);
    if (parse_meta_response(rest, 64 * 1024, m, used) != ResponseParse::kOk) break;
    FUZZ_CHECK(used > 0 && used <= rest.size() && m.bytes.size() == used);
    FUZZ_CHECK(within(m.bytes, rest) && within(m.code, rest) && within(m.flags, rest) && within(m.data, rest));
    meta_at += used;
  }
  size_t at = 0;
  while (at < size) {  // a stream of text replies, one element at a time
    TextReply t;
    size_t used = 0;
    const std::span<const char> rest = input.subspan(at);
    if (parse_text_response(rest, 64 * 1024, t, used) != ResponseParse::kOk) break;
    FUZZ_CHECK(used > 0 && used <= rest.size());
    FUZZ_CHECK(within(t.key, rest) && within(t.data, rest) && within(t.message, rest));
    at += used;
  }
  return 0;
}
