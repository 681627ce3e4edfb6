// A line on the control socket (anything running as rend's user can write one): parsed into a
// request or refused with a reason, never thrown.
#include <string_view>

#include "supervisor/control_request.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rend::supervisor::ControlRequest request;
  const rend::Status s =
      rend::supervisor::parse_control_request(std::string_view(reinterpret_cast<const char*>(data), size), request);
  if (!s) FUZZ_CHECK(!s.message().empty());
  return 0;
}
