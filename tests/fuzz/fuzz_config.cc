// The configuration file (operators write it; a reload reads it while rend serves): any text is
// accepted or refused with a reason, never thrown out of the parser; an accepted config's
// effective form parses again to the same effective config.
#include <string>

#include "common/config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  rend::Config config;
  if (!rend::parse_config_text(text, config)) return 0;
  rend::Config again;
  FUZZ_CHECK(rend::parse_config_text(config.effective.dump(), again));
  FUZZ_CHECK(again.effective == config.effective);
  return 0;
}
