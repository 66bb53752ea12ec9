#include "scheduler/task/task_tokenizer.h"

#include <cstdio>
#include <string>

namespace treepo::scheduler {

Result<model::Tokenizer> BuildTaskTokenizer() {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0.0f, 0.0f, 0.0f};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    pieces.emplace_back(buf);
    scores.push_back(0.0f);
  }
  // Single characters: looked up directly by Encode, so their score does not matter.
  pieces.emplace_back("\n");
  scores.push_back(0.0f);
  for (char c = ' '; c <= '~'; ++c) {
    pieces.emplace_back(1, c);
    scores.push_back(0.0f);
  }
  // Merges, each a prefix chain so greedy merging reaches the full piece.
  const char* const kMerges[] = {"Q:", "A:", "bo", "box", "boxe", "boxed", "\\boxed", "\\boxed{"};
  float score = 1.0f;
  for (const char* m : kMerges) {
    pieces.emplace_back(m);
    scores.push_back(score);
    score += 1.0f;
  }
  return model::Tokenizer::FromPieces(std::move(pieces), std::move(scores));
}

std::vector<int32_t> EncodeContinuation(const model::Tokenizer& tokenizer, std::string_view text) {
  std::vector<int32_t> tokens = tokenizer.Encode(text, /*add_bos=*/false);
  // Encode puts the dummy-prefix space first for non-empty text; it never merged (see header).
  if (!tokens.empty()) tokens.erase(tokens.begin());
  return tokens;
}

}  // namespace treepo::scheduler
