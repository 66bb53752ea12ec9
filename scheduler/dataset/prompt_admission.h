// Prompt admission: every prompt of a set is tokenized once, when the set is loaded, and only
// prompts that leave room for the longest response in the model's context are kept. Doing it
// at load time keeps tokenization off the scheduler's event loop (a long prompt cannot delay
// heartbeats), and an over-long prompt costs a warning instead of the whole run (a worker
// would refuse its task).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "scheduler/dataset/prompt_dataset.h"
#include "scheduler/dataset/prompt_encoder.h"

namespace treepo::scheduler {

// The most prompt tokens (BOS included) a query may have so that the prompt and a response of
// `response_tokens` fit in `max_seq_len` positions; kInvalidArgument when not even a
// BOS-only prompt fits. max_seq_len <= 0 means the context is unknown: no limit.
Result<int64_t> MaxPromptTokens(int64_t max_seq_len, int64_t response_tokens);

struct SkippedPrompt {
  size_t index = 0;    // position in the set given to AdmitPrompts (0-based)
  std::string id;      // the record's id
  int64_t tokens = 0;  // prompt tokens, BOS included
};

struct AdmittedPrompts {
  std::vector<PromptRecord> records;  // admitted, in their order, prompt_tokens filled
  std::vector<SkippedPrompt> skipped;
};

// Encodes each record's prompt (PromptEncoder: BOS first, or the chat template's rendering)
// into its prompt_tokens and keeps those of at most `max_prompt_tokens` tokens; each skipped
// one is logged as a warning with its index, id and length. A prompt the chat template
// refuses fails the whole set (kInvalidArgument naming the record). Linear in the total
// prompt size.
Result<AdmittedPrompts> AdmitPrompts(std::vector<PromptRecord> records,
                                     const PromptEncoder& encoder, int64_t max_prompt_tokens);

}  // namespace treepo::scheduler
