#include "scheduler/dataset/prompt_admission.h"

#include <limits>
#include <utility>

#include "common/log.h"

namespace treepo::scheduler {

Result<int64_t> MaxPromptTokens(int64_t max_seq_len, int64_t response_tokens) {
  if (max_seq_len <= 0) return std::numeric_limits<int64_t>::max();
  if (response_tokens < 0) return InvalidArgument("response tokens must be >= 0");
  if (max_seq_len - response_tokens < 1) {
    return InvalidArgument("a response of up to " + std::to_string(response_tokens) +
                           " tokens (max_depth x segment_tokens) leaves no room for a prompt in " +
                           "the model's context of " + std::to_string(max_seq_len) + " positions");
  }
  return max_seq_len - response_tokens;
}

Result<AdmittedPrompts> AdmitPrompts(std::vector<PromptRecord> records,
                                     const PromptEncoder& encoder, int64_t max_prompt_tokens) {
  AdmittedPrompts out;
  out.records.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    PromptRecord& r = records[i];
    Result<std::vector<int32_t>> tokens = encoder.Encode(r.prompt);
    if (!tokens.ok()) {
      return tokens.status().WithContext("prompt index " + std::to_string(i) + " (id '" + r.id +
                                         "')");
    }
    r.prompt_tokens = std::move(tokens).value();
    const int64_t n = static_cast<int64_t>(r.prompt_tokens.size());
    if (n > max_prompt_tokens) {
      spdlog::warn(
          "prompt index {} (id '{}', {} bytes) has {} tokens; at most {} leave room for the "
          "response in the model's context: skipped",
          i, r.id, r.prompt.size(), n, max_prompt_tokens);
      out.skipped.push_back(SkippedPrompt{i, r.id, n});
      continue;
    }
    out.records.push_back(std::move(r));
  }
  return out;
}

}  // namespace treepo::scheduler
