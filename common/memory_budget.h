// Memory estimated before it is allocated. A model config with huge (but individually
// plausible) sizes, or a KV pool of millions of pages, is refused with the numbers and the
// limit instead of ending in bad_alloc after eating the machine's memory.
//
// The limit is the machine's physical memory (sysconf), or $TREEPO_MEMORY_LIMIT_BYTES when
// that is set to a positive integer (a cap for shared machines and for tests).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace treepo {

// The limit in bytes, as above.
uint64_t MemoryLimitBytes();

// "1.50 GiB".
std::string FormatBytes(double bytes);

// kResourceExhausted naming `what`, the estimate and the limit when `bytes` exceeds
// MemoryLimitBytes().
Status CheckMemoryBudget(double bytes, std::string_view what);

}  // namespace treepo
