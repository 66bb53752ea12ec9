// Teacher-forced negative log-likelihood gradients of one token sequence: the `treepo grad`
// command and the gradient check against the PyTorch oracle (tests/reference/
// gen_grad_reference.py) both use this.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/model/safetensors.h"
#include "common/model/weights.h"
#include "common/status.h"
#include "common/tree/tree_record.h"

namespace treepo::learner {

struct NllGradients {
  double loss = 0.0;  // sum over t >= prompt_len of -log p(tokens[t] | tokens[..t))
  // dloss/dW per tensor, Hugging Face names (ParamLayout's); a tied model has no
  // lm_head.weight (its use is folded into model.embed_tokens.weight).
  std::map<std::string, model::NamedTensor> grads;
};

// Requires 1 <= prompt_len < tokens.size() <= max_seq_len and ids in the vocabulary
// (kInvalidArgument otherwise).
Result<NllGradients> ComputeNllGradients(const model::ModelWeights& weights,
                                         std::span<const int32_t> tokens, int prompt_len);

// The sum over every leaf of every tree of the summed NLL of the leaf's response (its
// root-to-leaf path's tokens after the prompt, cut to response_tokens), teacher forced on
// prompt + response: a token shared by several leaves counts once per leaf. `packed`: each
// tree runs as one packed sequence (every distinct prefix once, ancestor-only attention);
// false: one sequence per leaf (the reference). Leaves without a response token add nothing.
// kInvalidArgument for a tree without prompt tokens, a path longer than the model's positions,
// or a token outside the vocabulary (naming the query).
struct TreeNllGradients : NllGradients {
  int64_t leaves = 0;       // leaves with at least one response token
  int64_t path_tokens = 0;  // prompt + response tokens summed over those leaves' sequences
  int64_t rows = 0;         // rows the forward pass ran (path_tokens unless packed)
};
Result<TreeNllGradients> ComputeTreeNllGradients(const model::ModelWeights& weights,
                                                 const std::vector<TreeRecord>& trees, bool packed);

// Reads token ids separated by white space; refuses non-integers and ids outside
// [0, vocab_size) with kInvalidArgument naming the offending entry.
Result<std::vector<int32_t>> ReadTokenFile(const std::string& path, int vocab_size);

}  // namespace treepo::learner
