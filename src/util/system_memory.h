#pragma once
// How much RAM this machine has and how much a new allocation can still get (Linux /proc/meminfo:
// MemAvailable, the kernel's own estimate including reclaimable page cache, and MemTotal).
#include <cstdint>
#include <optional>

namespace pensieve {

struct SystemMemory {
  int64_t available_bytes = 0;
  int64_t total_bytes = 0;
};

// Empty when /proc/meminfo cannot be read or lacks the two fields. Never throws.
std::optional<SystemMemory> ReadSystemMemory();

}  // namespace pensieve
