#include "common/version.h"

#include <string>

namespace rend {

const char* reported_version() {
  static const std::string v = std::string(kProtocolVersion) + "-rend-" + kVersion;
  return v.c_str();
}

}  // namespace rend
