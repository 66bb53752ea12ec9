// Frames <-> messages. A frame is one unpacked flat-array Cap'n Proto message (a whole
// number of 8-byte words) whose root is protocols/treepo.capnp Envelope.
//
// Thread-safe: both functions are pure.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "protocols/messages.h"

namespace treepo::protocols {

// Encodes `message` as a frame. Does not validate; call Validate() first for input that
// did not come from Decode.
std::vector<uint8_t> Encode(const Message& message);

// Decodes and validates a frame from an untrusted peer; never throws or aborts. Errors:
//   kResourceExhausted  frame larger than options.max_frame_bytes
//   kFailedPrecondition protocol version is not kProtocolVersion
//   kUnimplemented      unknown message type or payload
//   kDataLoss           not a well-formed capnp message (truncated, garbage, trailing bytes,
//                       traversal or nesting limit hit), or a weight chunk checksum mismatch
//   kInvalidArgument    content breaks a rule of Validate()
// `frame` need not be word-aligned (it is copied when it is not).
Result<Message> Decode(std::span<const uint8_t> frame, const CodecOptions& options = {});

}  // namespace treepo::protocols
