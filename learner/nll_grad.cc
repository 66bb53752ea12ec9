#include "learner/nll_grad.h"

#include <fstream>

#include "learner/model_train.h"
#include "learner/service/trainer.h"

namespace treepo::learner {
namespace {

// dL/dW per tensor under the layout's Hugging Face names.
std::map<std::string, model::NamedTensor> NamedGradients(const model::ModelWeights& weights,
                                                         const std::vector<float>& grad) {
  std::map<std::string, model::NamedTensor> out;
  for (const model::TensorInfo& t : weights.layout.tensors()) {
    model::NamedTensor nt;
    nt.shape = t.shape;
    nt.data.assign(grad.begin() + t.offset, grad.begin() + t.offset + t.numel);
    out.emplace(t.name, std::move(nt));
  }
  return out;
}

}  // namespace

Result<NllGradients> ComputeNllGradients(const model::ModelWeights& weights,
                                         std::span<const int32_t> tokens, int prompt_len) {
  const int n = static_cast<int>(tokens.size());
  if (prompt_len < 1 || prompt_len >= n) {
    return InvalidArgument("prompt length " + std::to_string(prompt_len) + " must be in [1, " +
                           std::to_string(n) + ") for " + std::to_string(n) + " tokens");
  }
  TrainModel model(&weights);
  const int lens[] = {n};
  std::vector<float> logp;
  TREEPO_RETURN_IF_ERROR(model.Forward(TrainBatch{tokens, lens}, &logp, nullptr));
  NllGradients out;
  // Row r predicts tokens[r + 1]: the tokens after the prompt are predicted by rows
  // prompt_len - 1 .. n - 2.
  std::vector<float> dlogp(n, 0.0f);
  for (int r = prompt_len - 1; r < n - 1; ++r) {
    out.loss -= logp[r];
    dlogp[r] = -1.0f;
  }
  std::vector<float> grad(weights.layout.total(), 0.0f);
  model.Backward(dlogp, {}, grad.data());
  out.grads = NamedGradients(weights, grad);
  return out;
}

Result<TreeNllGradients> ComputeTreeNllGradients(const model::ModelWeights& weights,
                                                 const std::vector<TreeRecord>& trees,
                                                 bool packed) {
  const model::ModelConfig& c = weights.config;
  TreeNllGradients out;
  std::vector<float> grad(weights.layout.total(), 0.0f);
  TrainModel model(&weights);
  std::vector<float> logp;
  for (const TreeRecord& tree : trees) {
    if (tree.prompt_tokens.empty()) {
      return InvalidArgument("query " + tree.query_id + ": no prompt tokens");
    }
    // The tree's leaves as training sequences (LearnerBatch's shape, one tree).
    LearnerBatch batch;
    for (const TreeLeafRecord& leaf : tree.leaves) {
      TrainSequence s;
      s.tokens = tree.prompt_tokens;
      const std::vector<int32_t> response = tree.ResponseTokens(leaf);
      if (response.empty()) continue;
      s.tokens.insert(s.tokens.end(), response.begin(), response.end());
      if (static_cast<int64_t>(s.tokens.size()) > c.max_seq_len) {
        return InvalidArgument("query " + tree.query_id + ": leaf " + std::to_string(leaf.node) +
                               " has " + std::to_string(s.tokens.size()) +
                               " prompt + response tokens, more than the model's " +
                               std::to_string(c.max_seq_len) + " positions");
      }
      s.prompt_len = static_cast<int>(tree.prompt_tokens.size());
      out.path_tokens += static_cast<int64_t>(s.tokens.size());
      batch.sequences.push_back(std::move(s));
    }
    if (batch.sequences.empty()) continue;
    out.leaves += static_cast<int64_t>(batch.sequences.size());
    std::vector<size_t> all(batch.sequences.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    const Rows r = BuildRows(batch, all, packed);
    const Status st = model.Forward({r.tokens, r.seq_lens, r.parents}, &logp, nullptr);
    if (!st.ok()) return st.WithContext("query " + tree.query_id);
    out.rows += static_cast<int64_t>(r.tokens.size());
    std::vector<float> dlogp(r.tokens.size(), 0.0f);
    for (size_t k = 0; k < all.size(); ++k) {
      for (size_t row : r.out[k]) {
        out.loss -= logp[row];
        dlogp[row] -= 1.0f;  // once per leaf whose path holds the token
      }
    }
    model.Backward(dlogp, {}, grad.data());
  }
  out.grads = NamedGradients(weights, grad);
  return out;
}

Result<std::vector<int32_t>> ReadTokenFile(const std::string& path, int vocab_size) {
  std::ifstream in(path);
  if (!in) return InvalidArgument("cannot open token file " + path);
  std::vector<int32_t> tokens;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size()) {
      return InvalidArgument(path + ": entry " + std::to_string(tokens.size()) + " ('" + word +
                             "') is not an integer");
    }
    if (id < 0 || id >= vocab_size) {
      return InvalidArgument(path + ": token id " + word + " (entry " +
                             std::to_string(tokens.size()) + ") outside the vocabulary of " +
                             std::to_string(vocab_size));
    }
    tokens.push_back(static_cast<int32_t>(id));
  }
  return tokens;
}

}  // namespace treepo::learner
