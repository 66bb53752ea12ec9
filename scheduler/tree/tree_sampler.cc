#include "scheduler/tree/tree_sampler.h"

#include <algorithm>

#include "common/check.h"

namespace treepo::scheduler {

Status SamplerOptions::Validate() const {
  // Upper bounds far above any useful run, so that a typo (width=1000000000) is refused at
  // start instead of allocating per-leaf state until the machine runs out of memory.
  constexpr int kMaxWidth = 1 << 16, kMaxSegmentTokens = 1 << 16, kMaxDepth = 1 << 12;
  if (width < 1 || width > kMaxWidth) {
    return InvalidArgument("width (w) must be in [1, " + std::to_string(kMaxWidth) + "], got " +
                           std::to_string(width));
  }
  if (segment_tokens < 1 || segment_tokens > kMaxSegmentTokens) {
    return InvalidArgument("segment_tokens (L) must be in [1, " +
                           std::to_string(kMaxSegmentTokens) + "], got " +
                           std::to_string(segment_tokens));
  }
  if (max_depth < 1 || max_depth > kMaxDepth) {
    return InvalidArgument("max_depth (d) must be in [1, " + std::to_string(kMaxDepth) + "], got " +
                           std::to_string(max_depth));
  }
  if (branch_factor < 1) return InvalidArgument("branch_factor (b) must be >= 1");
  if (!sequential && branch_factor > width) {
    return InvalidArgument("branch_factor (b) must be <= width (w)");
  }
  if (more_init_divergence &&
      (init_divergence_max < branch_factor || init_divergence_max > width)) {
    return InvalidArgument("init_divergence_max (k_max) must be in [b, w]");
  }
  if (fallback_window_tokens > 0 && fallback_window_tokens % segment_tokens != 0) {
    return InvalidArgument("fallback_window_tokens must be <= 0 (= L) or a multiple of L");
  }
  if (static_cast<int64_t>(segment_tokens) * max_depth > (int64_t{1} << 22)) {
    return InvalidArgument("d * L (the response cap) must be <= 2^22 tokens, got " +
                           std::to_string(static_cast<int64_t>(segment_tokens) * max_depth));
  }
  if (sequential && static_cast<int64_t>(width) * max_depth > (int64_t{1} << 24)) {
    return InvalidArgument("sequential mode: width (w) * max_depth (d) is too large");
  }
  if (sequential_single_segment && !sequential) {
    return InvalidArgument("sequential_single_segment needs sequential");
  }
  return stop.Validate();
}

Result<std::unique_ptr<TreeSampler>> TreeSampler::Create(SamplerQuery query,
                                                         const SamplerOptions& options,
                                                         Detokenizer detokenize,
                                                         NodeIdAllocator* ids) {
  TREEPO_RETURN_IF_ERROR(options.Validate());
  if (query.id.value() == 0) return InvalidArgument("query id must be non-zero");
  if (query.prompt_tokens.empty()) return InvalidArgument("query has no prompt tokens");
  if (!detokenize) return InvalidArgument("no detokenizer");
  if (ids == nullptr) return InvalidArgument("no node id allocator");
  TREEPO_ASSIGN_OR_RETURN(auto branching, MakeBranchingPolicy(options.branching));
  TREEPO_ASSIGN_OR_RETURN(auto fallback, MakeFallbackPolicy(options.fallback_policy));
  TREEPO_ASSIGN_OR_RETURN(StopRuleSet stop_rules, MakeStopRules(options.stop));
  std::unique_ptr<TreeSampler> s(new TreeSampler(std::move(query), options, std::move(detokenize),
                                                 ids, std::move(stop_rules), std::move(branching),
                                                 std::move(fallback)));
  int k = options.width;
  if (!options.sequential) {
    k = options.branch_factor;
    if (options.more_init_divergence) {
      SplitMixRng rng(MixSeed(s->QuerySeed(), 0));
      k = static_cast<int>(rng.UniformInt(options.branch_factor, options.init_divergence_max));
    }
  }
  if (options.sequential) {
    // Sequential mode: ids for every (sample, depth) up front, so that a node's id (and with
    // it its sampling stream) follows from its sample index and depth, not arrival order.
    const int depths = options.sequential_single_segment ? 1 : options.max_depth;
    s->sequential_ids_.reserve(static_cast<size_t>(options.width) * depths);
    for (int i = 0; i < options.width * depths; ++i) s->sequential_ids_.push_back(ids->Next());
  }
  s->Spawn(std::nullopt, k);
  return s;
}

TreeSampler::TreeSampler(SamplerQuery query, const SamplerOptions& options, Detokenizer detokenize,
                         NodeIdAllocator* ids, StopRuleSet stop,
                         std::unique_ptr<BranchingPolicy> branching,
                         std::unique_ptr<FallbackPolicy> fallback)
    : query_(std::move(query)),
      options_(options),
      detokenize_(std::move(detokenize)),
      ids_(ids),
      stop_(std::move(stop)),
      branching_(std::move(branching)),
      fallback_(std::move(fallback)),
      tree_(query_.prompt_tokens) {}

NodeId TreeSampler::SequentialId(std::optional<NodeId> parent, int index) {
  const int sample = parent ? sample_of_.at(parent->value()) : index;
  const int depth = parent ? tree_.at(*parent).depth + 1 : 1;
  const int depths = static_cast<int>(sequential_ids_.size()) / options_.width;
  TREEPO_CHECK(sample < options_.width && depth <= depths) << sample << " " << depth;
  const NodeId id = sequential_ids_[static_cast<size_t>(sample) * depths + depth - 1];
  sample_of_[id.value()] = sample;
  return id;
}

uint64_t TreeSampler::QuerySeed() const { return MixSeed(options_.seed, query_.id.value()); }

std::vector<protocols::SegmentTask> TreeSampler::TakeRequests() {
  return std::exchange(requests_, {});
}

std::vector<NodeId> TreeSampler::TakeReleasable() { return std::exchange(releasable_, {}); }

void TreeSampler::Spawn(std::optional<NodeId> parent, int copies) {
  TREEPO_CHECK(copies >= 1);
  protocols::SegmentTask r;
  r.query_id = query_.id;
  r.parent_node_id = parent ? *parent : PromptNode(query_.id);
  r.prefix_tokens = query_.prompt_tokens;
  const std::vector<int32_t> response = tree_.ResponseTokens(parent);
  r.prefix_tokens.insert(r.prefix_tokens.end(), response.begin(), response.end());
  r.max_new_tokens = static_cast<uint32_t>(options_.sequential_single_segment
                                               ? options_.segment_tokens * options_.max_depth
                                               : options_.segment_tokens);
  // Seeds from the parent's seed and the child's index under it: independent of arrival
  // order and of node ids.
  const uint64_t parent_seed = parent ? tree_.at(*parent).seed : QuerySeed();
  int index = parent ? tree_.at(*parent).child_count : prompt_child_count_;
  for (int i = 0; i < copies; ++i) {
    const NodeId id = options_.sequential ? SequentialId(parent, index) : ids_->Next();
    const uint64_t seed = MixSeed(parent_seed, static_cast<uint64_t>(index++));
    tree_.Add(id, parent, seed, static_cast<int>(r.max_new_tokens));
    released_.push_back(false);
    pending_.push_back(id);
    r.child_node_ids.push_back(id);
    r.child_seeds.push_back(seed);
  }
  (parent ? tree_.at(*parent).child_count : prompt_child_count_) = index;
  requests_.push_back(std::move(r));
}

Status TreeSampler::OnResult(const protocols::ChildResult& out, WorkerId worker) {
  auto it = std::find(pending_.begin(), pending_.end(), out.node_id);
  if (it == pending_.end()) {
    return FailedPrecondition("node " + std::to_string(out.node_id.value()) +
                              " is not a pending node of query " +
                              std::to_string(query_.id.value()));
  }
  TreeNode& n = tree_.at(out.node_id);
  const std::string where = "node " + std::to_string(out.node_id.value()) + ": ";
  if (out.logprobs.size() != out.tokens.size()) {
    return InvalidArgument(where + std::to_string(out.tokens.size()) + " tokens but " +
                           std::to_string(out.logprobs.size()) + " logprobs");
  }
  const size_t want = static_cast<size_t>(n.max_new_tokens);
  if (out.tokens.size() > want) {
    return InvalidArgument(where + std::to_string(out.tokens.size()) + " tokens, asked for " +
                           std::to_string(want));
  }
  if (out.finish == protocols::SegmentFinish::kLength && out.tokens.size() != want) {
    return InvalidArgument(where + "segment of " + std::to_string(out.tokens.size()) +
                           " tokens without EOS (segments are exactly " + std::to_string(want) +
                           " tokens unless EOS)");
  }
  n.tokens = out.tokens;
  n.logprobs = out.logprobs;
  n.segment_finish = out.finish;
  n.worker = worker;
  n.weight_version = out.weight_version;
  n.reported = true;
  const int cap = options_.segment_tokens * options_.max_depth;
  int parent_tokens = 0;
  double parent_logprob = 0;
  if (n.parent) {
    parent_tokens = tree_.at(*n.parent).response_tokens;
    parent_logprob = tree_.at(*n.parent).cum_logprob;
  }
  if (parent_tokens + static_cast<int>(n.tokens.size()) > cap) {  // truncate to the cap
    n.tokens.resize(cap - parent_tokens);
    n.logprobs.resize(n.tokens.size());
  }
  n.text = detokenize_(n.tokens);
  n.response_tokens = parent_tokens + static_cast<int>(n.tokens.size());
  n.cum_logprob = parent_logprob;
  for (float lp : n.logprobs) n.cum_logprob += lp;
  pending_.erase(it);
  reported_.push_back(out.node_id);
  if (options_.sequential || pending_.empty()) Step(std::exchange(reported_, {}));
  return OkStatus();
}

void TreeSampler::Step(const std::vector<NodeId>& reported_in) {
  ++step_;
  std::vector<NodeId> reported = reported_in;
  std::sort(reported.begin(), reported.end(),
            [&](NodeId a, NodeId b) { return tree_.at(a).ordinal < tree_.at(b).ordinal; });
  std::vector<BranchPath> going_on;
  int finished_now = 0;
  for (NodeId id : reported) {
    TreeNode& n = tree_.at(id);
    SegmentView v;
    v.text = n.text;
    v.has_eos = n.segment_finish == protocols::SegmentFinish::kEos;
    v.response_tokens = n.response_tokens;
    v.depth = n.depth;
    v.max_depth = options_.max_depth;
    v.max_response_tokens = options_.segment_tokens * options_.max_depth;
    if (std::optional<FinishReason> reason = stop_.Check(v)) {
      n.finish = *reason;
      leaves_.push_back(id);
      ++finished_now;
      continue;
    }
    BranchPath p;
    p.tip = id;
    p.cum_logprob = n.cum_logprob;
    p.response_tokens = n.response_tokens;
    if (!n.logprobs.empty()) {
      double s = 0;
      for (float lp : n.logprobs) s += lp;
      p.last_mean_logprob = s / n.logprobs.size();
    }
    going_on.push_back(p);
  }
  const int a = static_cast<int>(going_on.size());
  if (a > 0) {
    int total = a;
    if (!options_.sequential) {
      const int room = options_.width - static_cast<int>(leaves_.size());
      total = std::max(a, std::min(room, options_.branch_factor * (a + finished_now)));
    }
    const std::vector<int> counts = branching_->Split(total, going_on);
    TREEPO_CHECK_EQ(counts.size(), going_on.size());
    for (int i = 0; i < a; ++i) Spawn(going_on[i].tip, counts[i]);
  }
  if (pending_.empty()) {
    if (static_cast<int>(leaves_.size()) < options_.width) {
      Fallback();
    } else {
      TREEPO_CHECK_EQ(static_cast<int>(leaves_.size()), options_.width);
      done_ = true;
    }
  }
  TREEPO_CHECK_LE(static_cast<int>(leaves_.size() + pending_.size()), options_.width);
  UpdateReleasable();
}

void TreeSampler::Fallback() {
  std::vector<FallbackCandidate> candidates;
  for (NodeId leaf : leaves_) {
    const TreeNode& n = tree_.at(leaf);
    if (n.finish != FinishReason::kFinished && n.finish != FinishReason::kEos) continue;
    candidates.push_back({tree_.Path(leaf), n.response_tokens});
  }
  FallbackParams p;
  p.remaining = options_.width - static_cast<int>(leaves_.size());
  p.branch_factor = options_.branch_factor;
  p.segment_tokens = options_.segment_tokens;
  p.window_tokens = options_.fallback_window_tokens > 0 ? options_.fallback_window_tokens
                                                        : options_.segment_tokens;
  p.max_depth = options_.max_depth;
  SplitMixRng rng(MixSeed(QuerySeed(), static_cast<uint64_t>(step_)));
  int planned = 0;
  for (const FallbackBranch& br : fallback_->Plan(std::move(candidates), p, rng)) {
    Spawn(br.parent, br.copies);
    planned += br.copies;
  }
  TREEPO_CHECK_EQ(planned, p.remaining);
}

void TreeSampler::UpdateReleasable() {
  std::vector<bool> needed(tree_.nodes().size(), false);
  auto mark_from = [&](std::optional<NodeId> id) {
    while (id && !needed[tree_.at(*id).ordinal]) {
      needed[tree_.at(*id).ordinal] = true;
      id = tree_.at(*id).parent;
    }
  };
  if (!done_) {
    for (NodeId id : pending_) mark_from(id);
    for (NodeId leaf : leaves_) {
      const TreeNode& n = tree_.at(leaf);
      if (n.finish == FinishReason::kFinished || n.finish == FinishReason::kEos) {
        mark_from(n.parent);
      }
    }
  }
  for (const TreeNode& n : tree_.nodes()) {
    if (n.reported && !needed[n.ordinal] && !released_[n.ordinal]) {
      released_[n.ordinal] = true;
      releasable_.push_back(n.id);
    }
  }
}

TreeRecord TreeSampler::TakeTree() {
  TREEPO_CHECK(done_);
  std::vector<const TreeNode*> nodes;
  for (const TreeNode& n : tree_.nodes()) nodes.push_back(&n);
  if (options_.sequential) {  // creation order follows arrivals: list by (sample, depth)
    std::sort(nodes.begin(), nodes.end(), [&](const TreeNode* a, const TreeNode* b) {
      return std::pair(sample_of_.at(a->id.value()), a->depth) <
             std::pair(sample_of_.at(b->id.value()), b->depth);
    });
  }
  TreeRecord t;
  t.query_id = query_.name;
  t.prompt = query_.prompt;
  t.answer = query_.answer;
  t.prompt_tokens = query_.prompt_tokens;
  for (const TreeNode* node : nodes) {
    const TreeNode& n = *node;
    TreeNodeRecord r;
    r.id = n.id.value();
    if (n.parent) r.parent = n.parent->value();
    r.depth = n.depth;
    r.tokens = n.tokens;
    r.logprobs = n.logprobs;
    r.text = n.text;
    r.finish = n.finish;
    r.worker = n.worker.value();
    r.weight_version = n.weight_version.value();
    t.nodes.push_back(std::move(r));
  }
  // Leaves ordered by their paths' creation ordinals: the same whatever the arrival order.
  std::vector<std::pair<std::vector<uint64_t>, NodeId>> leaves;
  for (NodeId id : leaves_) {
    std::vector<uint64_t> key;
    for (NodeId p : tree_.Path(id)) key.push_back(tree_.at(p).ordinal);
    leaves.emplace_back(std::move(key), id);
  }
  std::sort(leaves.begin(), leaves.end());
  for (const auto& [key, id] : leaves) {
    const TreeNode& n = tree_.at(id);
    t.leaves.push_back({id.value(), 0.0f, n.finish, n.response_tokens});
  }
  return t;
}

}  // namespace treepo::scheduler
