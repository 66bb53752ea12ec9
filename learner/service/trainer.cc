#include "learner/service/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "common/compute/decoder_backend.h"
#include "common/log.h"
#include "learner/service/checkpoint.h"

namespace treepo::learner {

Status TrainerOptions::Validate() const {
  TREEPO_RETURN_IF_ERROR(adamw.Validate());
  TREEPO_RETURN_IF_ERROR(loss.Validate());
  if (mini_batch_queries < 0) return InvalidArgument("mini_batch_queries must be >= 0");
  if (epochs < 1) return InvalidArgument("epochs must be >= 1");
  if (micro_batch_tokens < 1) return InvalidArgument("micro_batch_tokens must be >= 1");
  if (max_staleness < 0) return InvalidArgument("max_staleness must be >= 0");
  TREEPO_RETURN_IF_ERROR(compute::CheckBackendName("learner.backend", backend));
  if (device < 0) return InvalidArgument("learner.device must be >= 0");
  return OkStatus();
}

Trainer::Trainer(std::unique_ptr<compute::TrainBackend> backend, const TrainerOptions& options,
                 WeightVersion version)
    : options_(options),
      backend_(std::move(backend)),
      packed_(options.tree_packing && backend_->runs_tree_batches()),
      version_(version) {}

Result<std::unique_ptr<Trainer>> Trainer::Create(model::ModelWeights weights,
                                                 const TrainerOptions& options,
                                                 WeightVersion version) {
  TREEPO_RETURN_IF_ERROR(options.Validate());
  const TrainBackendOptions bo{options.backend, options.device};
  std::shared_ptr<const model::ModelWeights> initial;
  if (options.loss.kl_coef > 0.0f) initial = std::make_shared<const model::ModelWeights>(weights);
  auto backend = CreateTrainBackend(bo, std::move(weights), options.adamw);
  if (!backend.ok()) {
    return backend.status().WithContext("learner.backend = " + options.backend);
  }
  std::unique_ptr<Trainer> t(new Trainer(std::move(*backend), options, version));
  if (options.tree_packing && !t->packed_) {
    spdlog::info(
        "learner: the {} backend runs no tree-packed batches; training one sequence per leaf "
        "(the same loss and gradients)",
        t->backend_->name());
  }
  if (initial != nullptr) {
    TREEPO_ASSIGN_OR_RETURN(
        t->reference_,
        CreateGradientBackend({std::string(t->backend_->name()), options.device}, initial));
  }
  return t;
}

Status Trainer::set_collective(collective::Collective* collective) {
  if (collective != nullptr && collective->world_size() > 1 && options_.mini_batch_queries > 0) {
    return InvalidArgument(
        "mini_batch_queries > 0 needs world_size 1: data-parallel learners take one optimiser "
        "step per batch and epoch");
  }
  collective_ = collective != nullptr && collective->world_size() > 1 ? collective : nullptr;
  return OkStatus();
}

namespace {

// [begin, end) of `seqs` per tree: a batch lists each tree's sequences consecutively.
std::vector<std::pair<size_t, size_t>> TreeRuns(const LearnerBatch& batch,
                                                const std::vector<size_t>& seqs) {
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (i == 0 || batch.sequences[seqs[i]].tree != batch.sequences[seqs[i - 1]].tree) {
      runs.emplace_back(i, i);
    }
    runs.back().second = i + 1;
  }
  return runs;
}

}  // namespace

Rows BuildRows(const LearnerBatch& batch, const std::vector<size_t>& seqs, bool packed) {
  Rows r;
  r.out.resize(seqs.size());
  if (!packed) {
    for (size_t k = 0; k < seqs.size(); ++k) {
      const TrainSequence& q = batch.sequences[seqs[k]];
      const size_t start = r.tokens.size();
      r.tokens.insert(r.tokens.end(), q.tokens.begin(), q.tokens.end());
      r.seq_lens.push_back(static_cast<int>(q.tokens.size()));
      // Row start + prompt_len - 1 + j predicts response token j.
      for (int j = 0; j < q.response_tokens(); ++j) {
        r.out[k].push_back(start + static_cast<size_t>(q.prompt_len - 1 + j));
      }
    }
    return r;
  }
  for (const auto& [begin, end] : TreeRuns(batch, seqs)) {
    // One token trie per distinct first token (a tree's leaves share the prompt, so one per
    // tree): a token is a node keyed by (parent node, token id), each laid out once, parents
    // first. Equal prefixes give equal log-probs, so merging them changes no number.
    std::map<int32_t, std::map<std::pair<int, int32_t>, int>> tries;
    std::map<int32_t, std::vector<std::pair<int, int32_t>>> nodes;  // (parent, token)
    std::vector<std::vector<int>> node_of(end - begin);
    for (size_t k = begin; k < end; ++k) {
      const TrainSequence& q = batch.sequences[seqs[k]];
      auto& trie = tries[q.tokens[0]];
      auto& list = nodes[q.tokens[0]];
      int parent = -1;
      for (int32_t t : q.tokens) {
        auto [it, added] = trie.try_emplace({parent, t}, static_cast<int>(list.size()));
        if (added) list.emplace_back(parent, t);
        parent = it->second;
        node_of[k - begin].push_back(parent);
      }
    }
    std::map<int32_t, size_t> base;
    for (const auto& [first, list] : nodes) {
      base[first] = r.tokens.size();
      for (const auto& [parent, token] : list) {
        r.tokens.push_back(token);
        r.parents.push_back(parent);
      }
      r.seq_lens.push_back(static_cast<int>(list.size()));
    }
    for (size_t k = begin; k < end; ++k) {
      const TrainSequence& q = batch.sequences[seqs[k]];
      const size_t b = base[q.tokens[0]];
      // Tree-packed outputs are indexed by the predicted token's row.
      for (int j = 0; j < q.response_tokens(); ++j) {
        r.out[k].push_back(b + static_cast<size_t>(node_of[k - begin][q.prompt_len + j]));
      }
    }
  }
  return r;
}

std::vector<std::vector<size_t>> MicroBatches(const LearnerBatch& batch,
                                              const std::vector<size_t>& seqs,
                                              int micro_batch_tokens, bool packed) {
  // Units that stay together: one sequence, or (tree-packed) one tree's sequences.
  std::vector<std::pair<size_t, size_t>> units;
  if (packed) {
    units = TreeRuns(batch, seqs);
  } else {
    for (size_t i = 0; i < seqs.size(); ++i) units.emplace_back(i, i + 1);
  }
  std::vector<std::vector<size_t>> out;
  size_t rows = 0;
  for (const auto& [begin, end] : units) {
    const std::vector<size_t> unit(seqs.begin() + begin, seqs.begin() + end);
    const size_t n = packed ? BuildRows(batch, unit, true).tokens.size()
                            : batch.sequences[unit[0]].tokens.size();
    if (out.empty() || rows + n > static_cast<size_t>(micro_batch_tokens)) {
      out.emplace_back();
      rows = 0;
    }
    out.back().insert(out.back().end(), unit.begin(), unit.end());
    rows += n;
  }
  return out;
}

Status Trainer::SaveState(const std::string& dir) const {
  return backend_->SaveOptimizer(dir + "/" + kOptimizerFile);
}

Status Trainer::LoadState(const std::string& dir) {
  return backend_->LoadOptimizer(dir + "/" + kOptimizerFile);
}

Status Trainer::RecomputeOldLogp(const LearnerBatch& batch,
                                 std::vector<std::vector<float>>* logp_old) {
  logp_old->assign(batch.sequences.size(), {});
  std::set<uint64_t> versions;
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    const TrainSequence& s = batch.sequences[i];
    (*logp_old)[i].assign(s.versions.size(), 0.0f);
    versions.insert(s.versions.begin(), s.versions.end());
  }
  std::vector<float> logp;
  for (uint64_t v : versions) {
    compute::TrainBackend* m = nullptr;
    std::unique_ptr<compute::TrainBackend> other;
    if (v == version_.value()) {
      m = backend_.get();
    } else if (auto it = history_.find(v); it != history_.end()) {
      TREEPO_ASSIGN_OR_RETURN(
          other,
          CreateGradientBackend({std::string(backend_->name()), options_.device}, it->second));
      m = other.get();
    } else {
      return FailedPrecondition("tokens were sampled with weight version " + std::to_string(v) +
                                ", which the learner (at version " +
                                std::to_string(version_.value()) +
                                ") does not hold: staleness above max_staleness " +
                                std::to_string(options_.max_staleness));
    }
    std::vector<size_t> seqs;
    for (size_t i = 0; i < batch.sequences.size(); ++i) {
      const auto& vs = batch.sequences[i].versions;
      if (std::find(vs.begin(), vs.end(), v) != vs.end()) seqs.push_back(i);
    }
    for (const std::vector<size_t>& micro : MicroBatches(batch, seqs)) {
      const Rows r = BuildRows(batch, micro, packed_);
      TREEPO_RETURN_IF_ERROR(m->Forward({r.tokens, r.seq_lens, r.parents}, &logp, nullptr));
      for (size_t k = 0; k < micro.size(); ++k) {
        const TrainSequence& s = batch.sequences[micro[k]];
        for (int j = 0; j < s.response_tokens(); ++j) {
          if (s.versions[j] == v) (*logp_old)[micro[k]][j] = logp[r.out[k][j]];
        }
      }
    }
  }
  return OkStatus();
}

Result<TrainStepMetrics> Trainer::Step(const LearnerBatch& batch) {
  const auto t0 = std::chrono::steady_clock::now();
  TrainStepMetrics m;
  m.advantage_mean = batch.advantage_mean;
  m.advantage_std = batch.advantage_std;
  m.tokens = batch.response_tokens;
  m.sequences = static_cast<int64_t>(batch.sequences.size());
  std::shared_ptr<const model::ModelWeights> before;
  if (options_.max_staleness > 0) {
    before = std::make_shared<const model::ModelWeights>(backend_->weights());
  }

  // Mini-batches: consecutive whole trees.
  std::vector<std::vector<size_t>> minis;
  size_t trees_in_mini = 0, last_tree = static_cast<size_t>(-1);
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    const size_t tree = batch.sequences[i].tree;
    if (tree != last_tree) {
      last_tree = tree;
      if (minis.empty() || (options_.mini_batch_queries > 0 &&
                            trees_in_mini == static_cast<size_t>(options_.mini_batch_queries))) {
        minis.emplace_back();
        trees_in_mini = 0;
      }
      ++trees_in_mini;
    }
    minis.back().push_back(i);
  }
  // Every rank takes the same optimiser steps, also one whose shard is empty.
  if (collective_ != nullptr && minis.empty()) minis.emplace_back();

  // logp_old: the sampling weights' log-probs of the response tokens. When every token was
  // sampled by the current weights and the batch is one mini-batch for one epoch, the training
  // forward pass itself is that computation (same weights, same rows), so it fills logp_old
  // instead of a separate pass; otherwise a pass per sampling version comes first.
  bool on_policy = options_.reuse_forward_for_old_logp && minis.size() <= 1 && options_.epochs == 1;
  for (const TrainSequence& s : batch.sequences) {
    for (uint64_t v : s.versions) on_policy = on_policy && v == version_.value();
  }
  std::vector<std::vector<float>> logp_old;
  if (on_policy) {
    logp_old.resize(batch.sequences.size());
    for (size_t i = 0; i < batch.sequences.size(); ++i) {
      logp_old[i].assign(batch.sequences[i].versions.size(), 0.0f);
    }
  } else {
    TREEPO_RETURN_IF_ERROR(RecomputeOldLogp(batch, &logp_old));
  }

  const bool want_entropy = options_.loss.entropy_coef > 0.0f;
  const bool want_ref = options_.loss.kl_coef > 0.0f;
  std::vector<float> logp, entropy, ref_logp, dlogp_rows, dent_rows;
  std::vector<float> new_t, old_t, adv_t, ref_t, ent_t;
  double clip_sum = 0.0, ratio_sum = 0.0, kl_sum = 0.0, ent_sum = 0.0, grad_norm_sum = 0.0;
  int64_t stat_tokens = 0;
  for (int epoch = 0; epoch < options_.epochs; ++epoch) {
    for (const std::vector<size_t>& mini : minis) {
      double denom = 0.0;
      for (size_t s : mini) denom += batch.sequences[s].response_tokens();
      if (collective_ != nullptr) {
        TREEPO_RETURN_IF_ERROR(collective_->AllReduceSum(std::span<double>(&denom, 1)));
        if (denom == 0.0) continue;  // no rank has a token: no step anywhere
      }
      double mini_loss = 0.0;
      for (const std::vector<size_t>& micro : MicroBatches(batch, mini)) {
        const Rows r = BuildRows(batch, micro, packed_);
        const TrainBatch rows{r.tokens, r.seq_lens, r.parents};
        if (want_ref) TREEPO_RETURN_IF_ERROR(reference_->Forward(rows, &ref_logp, nullptr));
        TREEPO_RETURN_IF_ERROR(backend_->Forward(rows, &logp, want_entropy ? &entropy : nullptr));
        new_t.clear(), old_t.clear(), adv_t.clear(), ref_t.clear(), ent_t.clear();
        for (size_t k = 0; k < micro.size(); ++k) {
          const TrainSequence& s = batch.sequences[micro[k]];
          for (int j = 0; j < s.response_tokens(); ++j) {
            const size_t row = r.out[k][j];
            if (on_policy) logp_old[micro[k]][j] = logp[row];
            new_t.push_back(logp[row]);
            old_t.push_back(logp_old[micro[k]][j]);
            adv_t.push_back(s.advantages[j]);
            if (want_ref) ref_t.push_back(ref_logp[row]);
            if (want_entropy) ent_t.push_back(entropy[row]);
          }
        }
        PolicyLossInput in;
        in.logp_new = new_t;
        in.logp_old = old_t;
        in.advantages = adv_t;
        in.logp_ref = ref_t;
        in.entropy = ent_t;
        in.denominator = denom;
        TREEPO_ASSIGN_OR_RETURN(PolicyLossOutput out, PolicyLoss(options_.loss, in));
        mini_loss += out.loss;
        const double n = out.stats.tokens;
        clip_sum += out.stats.clip_fraction * n;
        ratio_sum += out.stats.ratio_mean * n;
        kl_sum += out.stats.kl_mean * n;
        ent_sum += out.stats.entropy_mean * n;
        stat_tokens += out.stats.tokens;
        m.ratio_max = std::max(m.ratio_max, out.stats.ratio_max);
        dlogp_rows.assign(r.tokens.size(), 0.0f);
        dent_rows.assign(want_entropy ? r.tokens.size() : 0, 0.0f);
        size_t t = 0;
        for (size_t k = 0; k < micro.size(); ++k) {
          const TrainSequence& s = batch.sequences[micro[k]];
          // A token shared by several paths (tree-packed) gets the sum of their gradients.
          for (int j = 0; j < s.response_tokens(); ++j, ++t) {
            const size_t row = r.out[k][j];
            dlogp_rows[row] += out.dlogp[t];
            if (want_entropy) dent_rows[row] += out.dentropy[t];
          }
        }
        TREEPO_RETURN_IF_ERROR(backend_->Backward(dlogp_rows, dent_rows));
      }
      if (collective_ != nullptr) {
        // The ranks' gradients are summed in host memory (compute/train_backend.h).
        TREEPO_RETURN_IF_ERROR(collective_->AllReduceSum(backend_->GradientOnHost()));
        TREEPO_RETURN_IF_ERROR(backend_->GradientFromHost());
      }
      TREEPO_ASSIGN_OR_RETURN(const StepStats st, backend_->Step());
      grad_norm_sum += st.grad_norm;
      m.lr = st.lr;
      m.loss += mini_loss;
      ++m.optimizer_steps;
    }
  }
  double mismatch_sum = 0.0;
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    for (size_t j = 0; j < logp_old[i].size(); ++j) {
      const double d = std::fabs(logp_old[i][j] - batch.sequences[i].rollout_logp[j]);
      mismatch_sum += d;
      m.logp_mismatch_max = std::max(m.logp_mismatch_max, d);
    }
  }
  if (batch.response_tokens > 0) {
    m.logp_mismatch = mismatch_sum / static_cast<double>(batch.response_tokens);
  }

  if (m.optimizer_steps > 0) {
    m.loss /= static_cast<double>(m.optimizer_steps);
    m.grad_norm = grad_norm_sum / static_cast<double>(m.optimizer_steps);
  }
  if (stat_tokens > 0) {
    const double n = static_cast<double>(stat_tokens);
    m.clip_fraction = clip_sum / n;
    m.ratio_mean = ratio_sum / n;
    m.kl_mean = kl_sum / n;
    m.entropy_mean = ent_sum / n;
  }
  if (before) history_[version_.value()] = std::move(before);
  version_ = WeightVersion(version_.value() + 1);
  const uint64_t keep_from = version_.value() > static_cast<uint64_t>(options_.max_staleness)
                                 ? version_.value() - options_.max_staleness
                                 : 0;
  std::erase_if(history_, [&](const auto& kv) { return kv.first < keep_from; });
  m.train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

std::vector<protocols::Metric> ToMetrics(const TrainStepMetrics& m) {
  return {{"loss", m.loss},
          {"clip_fraction", m.clip_fraction},
          {"ratio_mean", m.ratio_mean},
          {"ratio_max", m.ratio_max},
          {"kl_mean", m.kl_mean},
          {"entropy_mean", m.entropy_mean},
          {"advantage_mean", m.advantage_mean},
          {"advantage_std", m.advantage_std},
          {"logp_mismatch", m.logp_mismatch},
          {"logp_mismatch_max", m.logp_mismatch_max},
          {"grad_norm", m.grad_norm},
          {"lr", m.lr},
          {"tokens", static_cast<double>(m.tokens)},
          {"sequences", static_cast<double>(m.sequences)},
          {"optimizer_steps", static_cast<double>(m.optimizer_steps)},
          {"train_s", m.train_s}};
}

}  // namespace treepo::learner
