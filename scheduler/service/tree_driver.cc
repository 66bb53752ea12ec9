#include "scheduler/service/tree_driver.h"

#include <utility>

#include "common/plugin/plugin_loader.h"
#include "common/sampling_check.h"
#include "scheduler/reward/reward_fn.h"
#include "scheduler/service/rollout_job.h"

namespace treepo::scheduler {
namespace {

constexpr uint64_t kLocalMask = 0xffffffffULL;

class TreeQueryDriver final : public QueryDriver {
 public:
  TreeQueryDriver(QueryId query, const RolloutJobOptions& job)
      : query_(query), temperature_(job.temperature), top_p_(job.top_p), top_k_(job.top_k) {}

  Status Init(SamplerQuery q, const SamplerOptions& options, Detokenizer detok) {
    TREEPO_ASSIGN_OR_RETURN(sampler_,
                            TreeSampler::Create(std::move(q), options, std::move(detok), &ids_));
    return OkStatus();
  }

  Result<std::vector<TaskSpec>> TakeTasks() override {
    std::vector<TaskSpec> out;
    for (SegmentRequest& r : sampler_->TakeRequests()) {
      TaskSpec s;
      s.query = query_;
      s.task.query_id = query_;
      s.task.parent_node_id = r.parent ? Wire(*r.parent) : NodeId(0);
      for (NodeId c : r.children) s.task.child_node_ids.push_back(Wire(c));
      s.task.child_seeds = std::move(r.seeds);
      s.task.max_new_tokens = static_cast<uint32_t>(r.max_new_tokens);
      s.task.temperature = temperature_;
      s.task.top_p = top_p_;
      s.task.top_k = static_cast<uint32_t>(top_k_);
      s.task.stop_at_eos = true;
      s.parent_tokens = std::move(r.prefix_tokens);
      out.push_back(std::move(s));
    }
    return out;
  }

  Status OnResult(const TaskSpec&, const protocols::SegmentResult& result) override {
    for (const protocols::ChildResult& c : result.children) {
      if ((c.node_id.value() >> 32) != query_.value()) {
        return InvalidArgument("result names node " + std::to_string(c.node_id.value()) +
                               " of another query");
      }
      SegmentOutput o;
      o.node = NodeId(c.node_id.value() & kLocalMask);
      o.tokens = c.tokens;
      o.logprobs = c.logprobs;
      o.worker = result.worker_id;
      o.weight_version = c.weight_version;
      o.finish =
          c.finish == protocols::SegmentFinish::kEos ? EngineFinish::kEos : EngineFinish::kLength;
      TREEPO_RETURN_IF_ERROR(sampler_->OnResult(o));
    }
    return OkStatus();
  }

  std::vector<NodeId> TakeReleasable() override {
    std::vector<NodeId> out;
    for (NodeId n : sampler_->TakeReleasable()) out.push_back(Wire(n));
    return out;
  }

  bool Done() const override { return sampler_->Done(); }

  Result<TreeRecord> TakeTree() override {
    TreeRecord t = sampler_->TakeTree();
    for (TreeNodeRecord& n : t.nodes) {
      n.id = Wire(NodeId(n.id)).value();
      if (n.parent) n.parent = Wire(NodeId(*n.parent)).value();
    }
    for (TreeLeafRecord& l : t.leaves) l.node = Wire(NodeId(l.node)).value();
    return t;
  }

 private:
  NodeId Wire(NodeId local) const { return NodeId((query_.value() << 32) | local.value()); }

  QueryId query_;
  float temperature_, top_p_;
  int top_k_;
  NodeIdAllocator ids_;
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
    std::shared_ptr<const model::Tokenizer> tokenizer) {
  TREEPO_ASSIGN_OR_RETURN(SamplerOptions sampler_options, TreeDriverOptionsFrom(job));
  RewardOptions ro;
  ro.name = job.reward;
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<RewardFn> reward_fn, MakeRewardFn(ro));
  std::shared_ptr<const RewardFn> reward(std::move(reward_fn));
  if (records->size() >= (uint64_t{1} << 31)) return InvalidArgument("too many queries");

  Detokenizer detok = [tokenizer](const std::vector<int32_t>& tokens) {
    return tokenizer->Decode(tokens, /*prev=*/0);
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
    q.prompt_tokens =
        r.prompt_tokens.empty() ? tokenizer->Encode(r.prompt, /*add_bos=*/true) : r.prompt_tokens;
    auto d = std::make_unique<TreeQueryDriver>(q.id, job);
    TREEPO_RETURN_IF_ERROR(d->Init(std::move(q), sampler_options, detok));
    return std::unique_ptr<QueryDriver>(std::move(d));
  };
  setup.scorer = [reward, tokenizer](TreeRecord* tree) -> Status {
    for (TreeLeafRecord& leaf : tree->leaves) {
      const std::vector<int32_t> tokens = tree->ResponseTokens(leaf);
      const RewardResult r = reward->Score(tokenizer->Decode(tokens, /*prev=*/0), tree->answer,
                                           static_cast<int>(tokens.size()));
      leaf.reward = r.reward;
    }
    return OkStatus();
  };
  return setup;
}

}  // namespace treepo::scheduler
