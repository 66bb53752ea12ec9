// The built-in task's tokenizer, in llama2.c format: ids 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte
// tokens, then one piece per printable ASCII character (' '..'~') and '\n', then a few merges
// ("Q:", "A:", and the chain "bo".."\boxed{") so a box costs one token. No merged piece starts
// with a space, so the dummy-prefix space that Encode puts first never merges with the text.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/model/tokenizer.h"
#include "common/status.h"

namespace treepo::scheduler {

// The task tokenizer (deterministic: the same pieces and ids every call). 363 pieces.
Result<model::Tokenizer> BuildTaskTokenizer();

// Tokens of `text` as a continuation (no BOS, no dummy-prefix space): what a model that was
// given Encode(prompt, true) should produce for `text`. Decode(prompt tokens + these) gives
// prompt + text back. Precondition: no piece of `tokenizer` that starts with ' ' is longer
// than one byte (true for BuildTaskTokenizer()).
std::vector<int32_t> EncodeContinuation(const model::Tokenizer& tokenizer, std::string_view text);

}  // namespace treepo::scheduler
