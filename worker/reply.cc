#include "worker/reply.h"

namespace rend::worker {

namespace bin = proto::bin;

std::string_view text_failure(BackendFailure why) {
  return why == BackendFailure::kTimeout ? "SERVER_ERROR backend timeout" : "SERVER_ERROR backend unavailable";
}

uint16_t binary_failure(BackendFailure why) {
  return why == BackendFailure::kTimeout ? bin::kTemporaryFailure : bin::kInternalError;
}

}  // namespace rend::worker
