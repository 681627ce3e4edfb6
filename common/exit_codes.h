// Exit statuses rend's processes share with their supervisor.
//
// A child that exits with kExitBadConfig cannot do better by being started again with the same
// configuration (as nginx treats a worker's fatal exit): the supervisor reports it and leaves it
// down instead of restarting it in a loop, until a reload (workers) or a restart of rend.
#pragma once

namespace rend {

// sysexits.h's EX_CONFIG: the configuration (or what the supervisor handed over) is unusable.
inline constexpr int kExitBadConfig = 78;
// memcached's own "bad option value" status (EX_USAGE), fatal in the same way for the memcached
// rend supervises.
inline constexpr int kExitMemcachedUsage = 64;

}  // namespace rend
