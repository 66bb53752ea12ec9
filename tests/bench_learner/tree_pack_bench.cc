// tree_pack_bench: learner time per RL step, tree-packed vs one sequence per leaf, on real
// rollout trees (a tree file written by `treepo rollout` or `treepo train`). Each side runs
// the learner's whole step (Trainer::Step: forward, clipped policy loss, backward, AdamW) on
// the same batch from the same weights; they alternate --rounds times and the best time of
// each is kept. Also prints the rows each side runs (unique prefix tokens vs path tokens),
// whose ratio is the speed-up to expect where the linear layers dominate, and the attention
// keys each side's rows attend to (sum of depth + 1), whose ratio bounds the attention's
// speed-up (packing removes the shallow shared tokens, not the deep ones), and checks that both
// steps give the same update (the gradient's global norm agrees to 1e-4).
//
// Usage: tree_pack_bench --model M --trees FILE [--name NAME] [--threads 2] [--rounds 3]
//                        [--trees-per-step N] [--micro-batch-tokens 2048] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/cpu/ops.h"
#include "common/model/safetensors.h"
#include "common/tree/tree_record.h"
#include "learner/advantage/advantage.h"
#include "learner/service/train_batch.h"
#include "learner/service/trainer.h"

namespace {

using namespace treepo;  // NOLINT: a benchmark's main file

struct Args {
  std::string model, trees, name, json;
  int threads = 2, rounds = 3, trees_per_step = 0, micro_batch_tokens = 2048;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "tree_pack_bench: %s\nusage: tree_pack_bench --model M --trees FILE [--name N] "
               "[--threads 2] [--rounds 3] [--trees-per-step N] [--micro-batch-tokens 2048] "
               "[--json FILE]\n",
               why);
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) Usage(("missing value for " + k).c_str());
    const std::string v = argv[++i];
    if (k == "--model") {
      a.model = v;
    } else if (k == "--trees") {
      a.trees = v;
    } else if (k == "--name") {
      a.name = v;
    } else if (k == "--json") {
      a.json = v;
    } else if (k == "--threads") {
      a.threads = std::atoi(v.c_str());
    } else if (k == "--rounds") {
      a.rounds = std::atoi(v.c_str());
    } else if (k == "--trees-per-step") {
      a.trees_per_step = std::atoi(v.c_str());
    } else if (k == "--micro-batch-tokens") {
      a.micro_batch_tokens = std::atoi(v.c_str());
    } else {
      Usage(("unknown option " + k).c_str());
    }
  }
  if (a.model.empty() || a.trees.empty()) Usage("--model and --trees are required");
  if (a.threads < 1 || a.rounds < 1 || a.micro_batch_tokens < 1) Usage("bad number");
  if (a.name.empty()) a.name = a.trees;
  return a;
}

template <typename T>
T OrDie(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "tree_pack_bench: %s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*r);
}

struct Side {
  double best_s = 1e30;
  double grad_norm = 0.0;
  size_t rows = 0;
  double attention_keys = 0;  // sum over rows of the keys each attends to (its depth + 1)
};

// Rows and attention keys of one side's micro-batch layout of the whole batch.
void CountWork(const learner::Rows& r, Side* side) {
  side->rows = r.tokens.size();
  size_t start = 0;
  for (int n : r.seq_lens) {
    std::vector<int> depth(n, 0);
    for (int i = 0; i < n; ++i) {
      const int p = r.parents.empty() ? i - 1 : r.parents[start + i];
      depth[i] = p < 0 ? 0 : depth[p] + 1;
      side->attention_keys += depth[i] + 1;
    }
    start += n;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  cpu::SetBlasThreads(a.threads);
  model::ModelWeights w = OrDie(model::LoadModel(a.model), "model");
  std::vector<TreeRecord> trees = OrDie(ReadTreeFile(a.trees), "trees");
  if (a.trees_per_step > 0 && static_cast<size_t>(a.trees_per_step) < trees.size()) {
    trees.resize(a.trees_per_step);
  }
  // Trees without a reward signal (all leaves equal, e.g. stories without answers) get
  // alternating +1/-1 rewards, so that the advantages and the update are not all zero.
  bool all_equal = true;
  for (const TreeRecord& t : trees) {
    for (const TreeLeafRecord& l : t.leaves)
      all_equal = all_equal && l.reward == trees[0].leaves[0].reward;
  }
  if (all_equal) {
    for (TreeRecord& t : trees) {
      for (size_t i = 0; i < t.leaves.size(); ++i) t.leaves[i].reward = i % 2 == 0 ? 1.0f : -1.0f;
    }
  }
  auto estimator = OrDie(learner::MakeAdvantageEstimator("treepo"), "estimator");
  const learner::LearnerBatch batch =
      OrDie(learner::BuildLearnerBatch(trees, *estimator, w.config.max_seq_len), "batch");
  std::vector<size_t> all(batch.sequences.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;

  Side sides[2];  // 0: per leaf, 1: tree-packed
  for (int p = 0; p < 2; ++p) CountWork(learner::BuildRows(batch, all, p == 1), &sides[p]);
  for (int round = 0; round < a.rounds; ++round) {
    for (int p = 0; p < 2; ++p) {
      learner::TrainerOptions o;
      o.adamw.lr = 1e-5f;
      o.micro_batch_tokens = a.micro_batch_tokens;
      o.tree_packing = p == 1;
      // The batch's sampling version (one per step in sync mode) is the trainer's.
      const WeightVersion version(batch.sequences.empty() || batch.sequences[0].versions.empty()
                                      ? 0
                                      : batch.sequences[0].versions[0]);
      auto trainer = OrDie(learner::Trainer::Create(w, o, version), "trainer");
      const auto t0 = std::chrono::steady_clock::now();
      const learner::TrainStepMetrics m = OrDie(trainer->Step(batch), "step");
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      sides[p].best_s = std::min(sides[p].best_s, s);
      sides[p].grad_norm = m.grad_norm;
    }
  }
  const double token_ratio = static_cast<double>(sides[0].rows) / sides[1].rows;
  const double key_ratio = sides[0].attention_keys / sides[1].attention_keys;
  const double speedup = sides[0].best_s / sides[1].best_s;
  const double norm_rel =
      std::abs(sides[0].grad_norm - sides[1].grad_norm) / std::max(sides[0].grad_norm, 1e-30);
  std::printf(
      "| trees | model | trees | leaves | per-leaf rows | packed rows | token ratio | "
      "attention-key ratio | per-leaf s/step | packed s/step | speed-up | grad-norm rel. diff "
      "|\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::printf("| %s | %s | %zu | %zu | %zu | %zu | %.2f | %.2f | %.3f | %.3f | %.2f | %.1e |\n",
              a.name.c_str(), w.config.ToString().c_str(), trees.size(), batch.sequences.size(),
              sides[0].rows, sides[1].rows, token_ratio, key_ratio, sides[0].best_s,
              sides[1].best_s, speedup, norm_rel);
  if (!a.json.empty()) {
    nlohmann::json j = {{"name", a.name},
                        {"model", w.config.ToString()},
                        {"trees", trees.size()},
                        {"leaves", batch.sequences.size()},
                        {"per_leaf_rows", sides[0].rows},
                        {"packed_rows", sides[1].rows},
                        {"token_ratio", token_ratio},
                        {"attention_key_ratio", key_ratio},
                        {"per_leaf_s", sides[0].best_s},
                        {"packed_s", sides[1].best_s},
                        {"speedup", speedup},
                        {"grad_norm_rel_diff", norm_rel},
                        {"threads", a.threads},
                        {"rounds", a.rounds}};
    std::ofstream(a.json) << j.dump(2) << "\n";
  }
  return norm_rel < 1e-4 ? 0 : 1;
}
