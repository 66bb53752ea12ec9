#include "learner/nll_grad.h"

#include <fstream>

#include "learner/model_train.h"

namespace treepo::learner {

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
  for (const model::TensorInfo& t : weights.layout.tensors()) {
    model::NamedTensor nt;
    nt.shape = t.shape;
    nt.data.assign(grad.begin() + t.offset, grad.begin() + t.offset + t.numel);
    out.grads.emplace(t.name, std::move(nt));
  }
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
