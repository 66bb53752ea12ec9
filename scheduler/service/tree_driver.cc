#include "scheduler/service/tree_driver.h"

#include <algorithm>
#include <utility>

#include "common/plugin/plugin_loader.h"
#include "common/sampling_check.h"
#include "scheduler/reward/reward_fn.h"
#include "scheduler/service/rollout_job.h"

namespace treepo::scheduler {
namespace {

// Children per segment task: a request for more (sequential mode's w first samples, a wide
// initial divergence) goes out as several tasks forking the same parent, so that no single
// task needs more KV than a worker has.
constexpr size_t kMaxChildrenPerTask = 8;

class TreeQueryDriver final : public QueryDriver {
 public:
  TreeQueryDriver(QueryId query, const RolloutJobOptions& job)
      : query_(query),
        temperature_(job.temperature),
        top_p_(job.top_p),
        top_k_(job.top_k),
        ids_(PromptNode(query).value() + 1) {}

  Status Init(SamplerQuery q, const SamplerOptions& options, Detokenizer detok) {
    footprint_.prompt_positions =
        std::max<int64_t>(0, static_cast<int64_t>(q.prompt_tokens.size()) - 1);
    footprint_.paths = options.sequential ? options.width : std::max(1, options.branch_factor);
    footprint_.segment_tokens = options.segment_tokens;
    TREEPO_ASSIGN_OR_RETURN(sampler_,
                            TreeSampler::Create(std::move(q), options, std::move(detok), &ids_));
    return OkStatus();
  }

  Result<std::vector<protocols::SegmentTask>> TakeTasks() override {
    std::vector<protocols::SegmentTask> out;
    for (protocols::SegmentTask& r : sampler_->TakeRequests()) {
      r.temperature = temperature_;
      r.top_p = top_p_;
      r.top_k = static_cast<uint32_t>(top_k_);
      r.stop_at_eos = true;
      if (r.child_node_ids.size() <= kMaxChildrenPerTask) {
        out.push_back(std::move(r));
        continue;
      }
      for (size_t first = 0; first < r.child_node_ids.size(); first += kMaxChildrenPerTask) {
        const size_t last = std::min(r.child_node_ids.size(), first + kMaxChildrenPerTask);
        protocols::SegmentTask part = r;
        part.child_node_ids.assign(r.child_node_ids.begin() + first,
                                   r.child_node_ids.begin() + last);
        part.child_seeds.assign(r.child_seeds.begin() + first, r.child_seeds.begin() + last);
        out.push_back(std::move(part));
      }
    }
    return out;
  }

  Status OnResult(const protocols::SegmentTask&, const protocols::SegmentResult& result) override {
    for (const protocols::ChildResult& c : result.children) {
      if ((c.node_id.value() >> 32) != query_.value()) {
        return InvalidArgument("result names node " + std::to_string(c.node_id.value()) +
                               " of another query");
      }
      TREEPO_RETURN_IF_ERROR(sampler_->OnResult(c, result.worker_id));
    }
    return OkStatus();
  }

  std::vector<NodeId> TakeReleasable() override { return sampler_->TakeReleasable(); }

  bool Done() const override { return sampler_->Done(); }
  Footprint footprint() const override { return footprint_; }

  Result<TreeRecord> TakeTree() override { return sampler_->TakeTree(); }
  const QueryTree* live_tree() const override { return &sampler_->tree(); }

 private:
  QueryId query_;
  float temperature_, top_p_;
  int top_k_;
  NodeIdAllocator ids_;  // this query's node ids: (query << 32) | 1, 2, ...
  Footprint footprint_;
  std::unique_ptr<TreeSampler> sampler_;
};

}  // namespace

Result<SamplerOptions> TreeDriverOptionsFrom(const RolloutJobOptions& job) {
  TREEPO_RETURN_IF_ERROR(CheckSamplingParams(job.temperature, job.top_p, job.top_k));
  SamplerOptions s;
  s.width = job.width;
  s.segment_tokens = job.segment_tokens;
  s.max_depth = job.max_depth;
  s.branch_factor = job.branch;
  s.branching.policy = job.branching;
  for (std::string& name : SplitCommaList(job.extra_stop_rules)) {
    s.stop.extra_rules.push_back(std::move(name));
  }
  if (job.init_divergence == "more") {
    s.more_init_divergence = true;
  } else if (job.init_divergence != "fixed") {
    return InvalidArgument("init_divergence must be fixed or more, not '" + job.init_divergence +
                           "'");
  }
  s.init_divergence_max = job.max_init_divergence;
  if (job.mode == "sequential") {
    s.sequential = true;
  } else if (job.mode != "tree") {
    return InvalidArgument("mode must be tree or sequential, not '" + job.mode + "'");
  }
  s.seed = job.seed;
  TREEPO_RETURN_IF_ERROR(s.Validate());
  return s;
}

Result<TreeDriverSetup> MakeTreeDriverSetup(
    const RolloutJobOptions& job, std::shared_ptr<const std::vector<PromptRecord>> records,
    std::shared_ptr<const model::TextTokenizer> tokenizer) {
  TREEPO_ASSIGN_OR_RETURN(SamplerOptions sampler_options, TreeDriverOptionsFrom(job));
  RewardOptions ro;
  ro.name = job.reward;
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<RewardFn> reward_fn, MakeRewardFn(ro));
  std::shared_ptr<const RewardFn> reward(std::move(reward_fn));
  if (records->size() >= (uint64_t{1} << 31)) return InvalidArgument("too many queries");

  Detokenizer detok = [tokenizer](const std::vector<int32_t>& tokens) {
    return tokenizer->Decode(tokens, /*skip_special_tokens=*/false);
  };
  TreeDriverSetup setup;
  setup.factory = [records, tokenizer, sampler_options, detok,
                   job](size_t index) -> Result<std::unique_ptr<QueryDriver>> {
    const PromptRecord& r = records->at(index);
    SamplerQuery q;
    q.id = QueryId(index + 1);
    q.name = r.id;
    q.prompt = r.prompt;
    q.answer = r.answer.value_or("");
    // Tokenized when the set was loaded (AdmitPrompts), off the scheduler's loop.
    q.prompt_tokens = r.prompt_tokens.empty()
                          ? tokenizer->Encode(r.prompt, /*add_special_tokens=*/true)
                          : r.prompt_tokens;
    auto d = std::make_unique<TreeQueryDriver>(q.id, job);
    TREEPO_RETURN_IF_ERROR(d->Init(std::move(q), sampler_options, detok));
    return std::unique_ptr<QueryDriver>(std::move(d));
  };
  setup.scorer = [reward, tokenizer](TreeRecord* tree) -> Status {
    for (TreeLeafRecord& leaf : tree->leaves) {
      const std::vector<int32_t> tokens = tree->ResponseTokens(leaf);
      const RewardResult r = reward->Score(tokenizer->Decode(tokens, /*skip_special_tokens=*/false),
                                           tree->answer, static_cast<int>(tokens.size()));
      leaf.reward = r.reward;
    }
    return OkStatus();
  };
  return setup;
}

}  // namespace treepo::scheduler
