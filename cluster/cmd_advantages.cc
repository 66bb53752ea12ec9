// `treepo advantages`: the advantages an estimator gives the leaves of a tree file.
//
// stdout: one JSON line per leaf, {"query_id", "node", "reward", "advantage", "whitened"}, in
// file order; "advantage" is before batch whitening, "whitened" after (equal when the
// estimator does not whiten). The whole file is one batch; a leaf's response_tokens is its
// token count in the whitening. A per-segment estimator (tree_segment, ...) adds "segments":
// the advantage of each node of the leaf's path, root side first, as trained on (before any
// whitening; "advantage" is then the leaf's summary value).
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cluster/command.h"
#include "cluster/plugins.h"
#include "common/log.h"
#include "common/tree/tree_record.h"
#include "learner/advantage/advantage.h"

namespace treepo::cluster {
namespace {

struct AdvantagesOptions {
  std::string trees_path;
  std::string estimator = "treepo";
  std::vector<std::string> plugins;  // plug-in libraries to load first
};

Status RunAdvantages(const AdvantagesOptions& o) {
  TREEPO_RETURN_IF_ERROR(LoadPluginFiles(o.plugins));
  TREEPO_ASSIGN_OR_RETURN(auto estimator, learner::MakeAdvantageEstimator(o.estimator));
  TREEPO_ASSIGN_OR_RETURN(std::vector<TreeRecord> trees, ReadTreeFile(o.trees_path));
  std::vector<learner::QueryLeaves> batch;
  for (const TreeRecord& t : trees) {
    TREEPO_ASSIGN_OR_RETURN(learner::QueryLeaves q, learner::LeavesFromTree(t));
    batch.push_back(std::move(q));
  }
  const learner::BatchAdvantages adv = learner::ComputeBatchAdvantages(*estimator, batch);
  size_t leaves = 0;
  for (size_t q = 0; q < batch.size(); ++q) {
    const std::vector<std::vector<double>> segments = estimator->segmented()
                                                          ? estimator->ComputeSegments(batch[q])
                                                          : std::vector<std::vector<double>>{};
    for (size_t i = 0; i < batch[q].leaves.size(); ++i) {
      const learner::LeafSample& l = batch[q].leaves[i];
      nlohmann::json j;
      j["query_id"] = batch[q].query_id;
      j["node"] = l.node;
      j["reward"] = l.reward;
      j["advantage"] = adv.raw[q][i];
      j["whitened"] = adv.whitened[q][i];
      if (i < segments.size()) j["segments"] = segments[i];
      std::cout << j.dump() << "\n";
      ++leaves;
    }
  }
  std::cout.flush();
  spdlog::info("{}: {} queries, {} leaves", estimator->name(), batch.size(), leaves);
  return OkStatus();
}

}  // namespace

void RegisterAdvantages(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<AdvantagesOptions>();
  CLI::App* cmd = app.add_subcommand("advantages", "Per-leaf advantages of a tree file (JSONL)");
  cmd->add_option("--trees", opts->trees_path, "tree file (one JSON tree per line)")->required();
  std::string names;
  for (std::string_view n : learner::AdvantageEstimatorNames()) {
    names += names.empty() ? "" : ", ";
    names += n;
  }
  cmd->add_option("--estimator", opts->estimator, "one of: " + names + ", or a plug-in's")
      ->capture_default_str();
  cmd->add_option("--plugin", opts->plugins,
                  "plug-in library to load first (repeatable; docs/plugins.md)");
  cmd->callback([opts, exit_code] {
    InitLogging("advantages");
    const Status st = RunAdvantages(*opts);
    if (!st.ok()) {
      spdlog::error("advantages: {}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster
