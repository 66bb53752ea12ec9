// The QueryDriver of a rollout job: one TreeSampler per query (tree or sequential mode), the
// prompt tokenised with the job's tokenizer, leaves scored with the named reward function.
//
// Node ids: each query's sampler numbers its nodes (query id << 32) | 1, 2, ... with its own
// allocator (PromptNode(query) = query << 32 is the prompt's KV). Ids are thus unique in the
// run and, unlike ids from one allocator shared by all queries, do not depend on how queries
// interleave, so a node's sampling stream NodeRng(seed, id) is the same whatever the number
// of workers. The same ids are on the wire and in the tree records.
#pragma once

#include <memory>
#include <vector>

#include "common/model/text_tokenizer.h"
#include "common/status.h"
#include "scheduler/dataset/prompt_dataset.h"
#include "scheduler/service/rollout_runner.h"
#include "scheduler/tree/tree_sampler.h"

namespace treepo::scheduler {

struct RolloutJobOptions;

// The sampler options a job asks for (mode, width, ..., seed), validated.
Result<SamplerOptions> TreeDriverOptionsFrom(const RolloutJobOptions& job);

struct TreeDriverSetup {
  DriverFactory factory;  // query i: records[i], QueryId(i + 1)
  TreeScorer scorer;      // the job's reward function against each record's answer
};

Result<TreeDriverSetup> MakeTreeDriverSetup(
    const RolloutJobOptions& job, std::shared_ptr<const std::vector<PromptRecord>> records,
    std::shared_ptr<const model::TextTokenizer> tokenizer);

}  // namespace treepo::scheduler
