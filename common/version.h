// rend's version, and the version string it reports to memcached clients.
//
// Clients and tools decide which features to use from the server's version (memccapable, for one,
// expects an error for "version foo bar" from servers it thinks are older than 1.3). rend speaks
// memcached 1.6's protocol, so it reports that version with its own appended.
#pragma once

namespace rend {
#ifdef REND_VERSION
inline constexpr const char* kVersion = REND_VERSION;
#else
inline constexpr const char* kVersion = "0.0.0";
#endif
inline constexpr const char* kProtocolVersion = "1.6.18";
// What `version` answers: "1.6.18-rend-0.1.0".
const char* reported_version();
}  // namespace rend
