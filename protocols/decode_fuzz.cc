// libFuzzer target: Decode must never crash, hang or leak on any input, and whatever it
// accepts must survive Encode -> Decode unchanged (compared as bytes, so NaNs compare).
// Build with the `fuzz` preset; seeds: tests/data/fuzz_corpus/.
#include <cstddef>
#include <cstdint>
#include <span>

#include "protocols/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using treepo::protocols::Decode;
  using treepo::protocols::Encode;
  treepo::Result<treepo::protocols::Message> decoded = Decode(std::span<const uint8_t>(data, size));
  if (!decoded.ok()) {
    if (decoded.status().message().empty()) __builtin_trap();  // every rejection says why
    return 0;
  }
  const std::vector<uint8_t> frame = Encode(*decoded);
  treepo::Result<treepo::protocols::Message> again = Decode(frame);
  if (!again.ok() || Encode(*again) != frame) __builtin_trap();
  return 0;
}
