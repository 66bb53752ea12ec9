#include "learner/pretrain/pretrain.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <string>

#include "common/cpu/ops.h"
#include "learner/model_train.h"

namespace treepo::learner {

Status PretrainConfig::Validate() const {
  if (steps < 1) return InvalidArgument("pretrain: steps must be >= 1");
  if (batch_size < 1) return InvalidArgument("pretrain: batch_size must be >= 1");
  if (log_every < 0) return InvalidArgument("pretrain: log_every must be >= 0");
  if (blas_threads < 0) return InvalidArgument("pretrain: blas_threads must be >= 0");
  return adamw.Validate();
}

namespace {

Status ValidateCorpus(const std::vector<PretrainSequence>& corpus,
                      const model::ModelConfig& config) {
  if (corpus.empty()) return InvalidArgument("pretrain: empty corpus");
  for (size_t i = 0; i < corpus.size(); ++i) {
    const PretrainSequence& s = corpus[i];
    const int n = static_cast<int>(s.tokens.size());
    if (n < 2 || n > config.max_seq_len) {
      return InvalidArgument("pretrain: sequence " + std::to_string(i) + " has " +
                             std::to_string(n) + " tokens (need 2.." +
                             std::to_string(config.max_seq_len) + ")");
    }
    if (s.loss_start < 1 || s.loss_start >= n) {
      return InvalidArgument("pretrain: sequence " + std::to_string(i) + " has loss_start " +
                             std::to_string(s.loss_start));
    }
    for (int32_t t : s.tokens) {
      if (t < 0 || t >= config.vocab_size) {
        return InvalidArgument("pretrain: sequence " + std::to_string(i) + " holds token " +
                               std::to_string(t) + " outside the vocabulary");
      }
    }
  }
  return OkStatus();
}

// Yields corpus indices in a seeded order, reshuffled at every epoch.
class Shuffler {
 public:
  Shuffler(size_t n, uint64_t seed) : order_(n), rng_(seed) {
    std::iota(order_.begin(), order_.end(), size_t{0});
    std::shuffle(order_.begin(), order_.end(), rng_);
  }
  size_t Next() {
    if (pos_ == order_.size()) {
      std::shuffle(order_.begin(), order_.end(), rng_);
      pos_ = 0;
    }
    return order_[pos_++];
  }

 private:
  std::vector<size_t> order_;
  std::mt19937_64 rng_;
  size_t pos_ = 0;
};

}  // namespace

Result<PretrainStats> Pretrain(const PretrainConfig& config,
                               const std::vector<PretrainSequence>& corpus,
                               model::ModelWeights* weights,
                               const std::function<void(const PretrainLog&)>& on_log) {
  TREEPO_RETURN_IF_ERROR(config.Validate());
  TREEPO_RETURN_IF_ERROR(ValidateCorpus(corpus, weights->config));
  if (config.blas_threads > 0) cpu::SetBlasThreads(config.blas_threads);

  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  Clock::time_point last_log = start;
  TrainModel model(weights);
  AdamW opt(weights->layout, config.adamw);
  std::vector<float> grad(weights->layout.total(), 0.0f);
  Shuffler shuffler(corpus.size(), config.seed);

  std::vector<int32_t> tokens;
  std::vector<int> lens;
  std::vector<float> logp, dlogp;
  std::vector<size_t> picked(config.batch_size);
  PretrainStats stats;
  double loss_sum = 0.0;
  int loss_steps = 0;
  int64_t tokens_since_log = 0;

  for (int step = 1; step <= config.steps; ++step) {
    tokens.clear();
    lens.clear();
    for (size_t& p : picked) {
      p = shuffler.Next();
      const PretrainSequence& s = corpus[p];
      tokens.insert(tokens.end(), s.tokens.begin(), s.tokens.end());
      lens.push_back(static_cast<int>(s.tokens.size()));
    }
    TREEPO_RETURN_IF_ERROR(model.Forward({tokens, lens}, &logp, nullptr));

    // Row r predicts token r + 1 of its sequence: the loss rows of a sequence starting at row
    // `base` are base + loss_start - 1 .. base + n - 2.
    dlogp.assign(tokens.size(), 0.0f);
    int64_t loss_tokens = 0;
    for (size_t p : picked) loss_tokens += corpus[p].tokens.size() - corpus[p].loss_start;
    const float w = -1.0f / static_cast<float>(loss_tokens);
    double nll = 0.0;
    size_t base = 0;
    for (size_t p : picked) {
      const PretrainSequence& s = corpus[p];
      const size_t n = s.tokens.size();
      for (size_t r = base + s.loss_start - 1; r + 1 < base + n; ++r) {
        dlogp[r] = w;
        nll -= logp[r];
      }
      base += n;
    }
    model.Backward(dlogp, {}, grad.data());
    const StepStats st = opt.Step(weights->data.data(), grad.data());

    const double loss = nll / static_cast<double>(loss_tokens);
    if (step == 1) stats.first_loss = loss;
    loss_sum += loss;
    ++loss_steps;
    stats.tokens += static_cast<int64_t>(tokens.size());
    tokens_since_log += static_cast<int64_t>(tokens.size());
    const bool log_now =
        step == config.steps || (config.log_every > 0 && step % config.log_every == 0);
    if (log_now) {
      const Clock::time_point now = Clock::now();
      const double dt = std::chrono::duration<double>(now - last_log).count();
      PretrainLog log;
      log.step = step;
      log.loss = loss_sum / loss_steps;
      log.lr = st.lr;
      log.grad_norm = st.grad_norm;
      log.tokens_per_s = dt > 0.0 ? static_cast<double>(tokens_since_log) / dt : 0.0;
      stats.last_loss = log.loss;
      if (on_log) on_log(log);
      last_log = now;
      loss_sum = 0.0;
      loss_steps = 0;
      tokens_since_log = 0;
    }
  }
  stats.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  return stats;
}

}  // namespace treepo::learner
