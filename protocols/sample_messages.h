// One valid message of every type, with non-default values in every field: the values the
// round-trip and golden-frame tests compare against and the fuzz corpus seeds.
//
// Frozen: tests/data/protocol_v1_golden.bin holds these messages encoded at protocol v1.
// Fields appended later keep their defaults here (or go into a new golden file), so the old
// frames keep decoding to exactly these values.
#pragma once

#include <vector>

#include "protocols/messages.h"

namespace treepo::protocols {

std::vector<Message> SampleMessages();  // in MessageType order, one per type

}  // namespace treepo::protocols
