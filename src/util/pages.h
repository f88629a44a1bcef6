#pragma once
// Giving pages back to the system: for bytes that were read once and copied elsewhere (a model's weights after
// a backend or a conversion took them).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace pensieve {

// Drops the whole pages of [p, p + n) that lie inside the mapping or allocation [base, base + size)
// (MADV_DONTNEED): a private file mapping reads them from the file again if touched, anonymous memory reads
// zeros. Partial pages at either end stay.
inline void DropWholePages(const void* base, size_t size, const void* p, size_t n) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto lo = std::max(reinterpret_cast<uintptr_t>(p), reinterpret_cast<uintptr_t>(base));
  const auto hi = std::min(reinterpret_cast<uintptr_t>(p) + n, reinterpret_cast<uintptr_t>(base) + size);
  const uintptr_t first = (lo + page - 1) / page * page, last = hi / page * page;
  if (first < last) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace pensieve
