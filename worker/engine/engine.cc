#include "worker/engine/engine.h"

#include <string>
#include <unordered_set>

#include "common/check.h"
#include "common/cpu/ops.h"
#include "worker/engine/engine_state.h"

namespace treepo::worker {
namespace {

constexpr uint64_t kReservedBit = uint64_t{1} << 63;

bool SameShape(const model::ModelConfig& a, const model::ModelConfig& b) {
  return a.dim == b.dim && a.hidden_dim == b.hidden_dim && a.n_layers == b.n_layers &&
         a.n_heads == b.n_heads && a.n_kv_heads == b.n_kv_heads && a.vocab_size == b.vocab_size &&
         a.qkv_bias == b.qkv_bias && a.tied_embeddings == b.tied_embeddings &&
         a.qk_norm == b.qk_norm && a.head_dim() == b.head_dim();
}

std::string Id(NodeId n) { return std::to_string(n.value()); }

}  // namespace

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

const char* FinishReasonName(FinishReason reason) {
  return reason == FinishReason::kEos ? "eos" : "length";
}

Status EngineOptions::Validate() const {
  TREEPO_RETURN_IF_ERROR(kv.Validate());
  if (max_step_tokens < 1) return InvalidArgument("max_step_tokens must be >= 1");
  if (blas_threads < 0) return InvalidArgument("blas_threads must be >= 0");
  if (device < 0) return InvalidArgument("device must be >= 0");
  return compute::CheckBackendName("backend", backend);  // resolved once, by Create
}

Result<std::unique_ptr<Engine>> Engine::Create(std::shared_ptr<const model::ModelWeights> weights,
                                               WeightVersion version,
                                               const EngineOptions& options) {
  TREEPO_RETURN_IF_ERROR(options.Validate());
  if (weights == nullptr) return InvalidArgument("engine needs weights");
  TREEPO_RETURN_IF_ERROR(weights->config.Validate());
  if (!weights->complete()) {
    return InvalidArgument("weights buffer does not match its layout");
  }
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<TokenSampler> sampler,
                          TokenSamplers().Make(options.sampler));
  cpu::SetBlasThreads(options.blas_threads);
  const compute::KvShape shape{weights->config.n_layers, options.kv.num_pages, options.kv.page_size,
                               weights->config.kv_dim()};
  TREEPO_ASSIGN_OR_RETURN(
      std::unique_ptr<compute::DecoderBackend> backend,
      compute::CreateDecoderBackend({options.backend, options.device}, weights, shape));
  auto state = std::make_unique<State>(std::move(weights), version, options, std::move(backend));
  state->sampler = std::move(sampler);
  return std::unique_ptr<Engine>(new Engine(std::move(state)));
}

Engine::Engine(std::unique_ptr<State> state) : s_(std::move(state)) {}
Engine::~Engine() = default;

Status Engine::Submit(SegmentRequest req) {
  State& s = *s_;
  const model::ModelConfig& c = s.weights->config;
  // ---- validate and plan: nothing changes until every check has passed ----
  if (req.weight_version != s.version) {
    return FailedPrecondition("task is for weight version " +
                              std::to_string(req.weight_version.value()) + ", engine has " +
                              std::to_string(s.version.value()));
  }
  if (req.children.empty()) return InvalidArgument("task has no children");
  if (req.seeds.size() != req.children.size()) {
    return InvalidArgument("task has " + std::to_string(req.seeds.size()) + " seeds for " +
                           std::to_string(req.children.size()) + " children");
  }
  if (req.max_new_tokens < 1) return InvalidArgument("max_new_tokens must be >= 1");
  TREEPO_RETURN_IF_ERROR(req.sampling.Validate());
  std::unordered_set<NodeId> seen;
  for (NodeId child : req.children) {
    if (child.value() & kReservedBit) return InvalidArgument("node id " + Id(child) + " reserved");
    if (!seen.insert(child).second) return InvalidArgument("child " + Id(child) + " repeated");
    if (s.kv.Contains(child)) return AlreadyExists("node " + Id(child) + " is already held");
  }
  for (int32_t t : req.prefix_tokens) {
    if (t < 0 || t >= c.vocab_size) {
      return InvalidArgument("prefix token " + std::to_string(t) + " outside the vocabulary");
    }
  }
  const bool held = req.parent && s.kv.Contains(*req.parent);
  if (req.parent) {
    if (req.parent->value() & kReservedBit) return InvalidArgument("parent id reserved");
    if (seen.contains(*req.parent)) return InvalidArgument("parent is also a child");
  }
  if (held) {
    auto it = s.nodes.find(*req.parent);
    if (it == s.nodes.end()) {
      return FailedPrecondition("parent " + Id(*req.parent) + " is still decoding");
    }
    const HeldNode& p = it->second;
    if (p.busy) return FailedPrecondition("parent " + Id(*req.parent) + " is still running");
    if (p.version != s.version) {
      return FailedPrecondition("parent " + Id(*req.parent) + " KV is from weight version " +
                                std::to_string(p.version.value()) + "; resend with its prefix");
    }
  } else if (req.prefix_tokens.empty()) {
    if (req.parent) return NotFound("parent " + Id(*req.parent) + " not held and no prefix");
    return InvalidArgument("task has neither a parent nor prefix tokens");
  }
  const int fork_length =
      held ? s.kv.Length(*req.parent) : static_cast<int>(req.prefix_tokens.size()) - 1;
  if (static_cast<int64_t>(fork_length) + req.max_new_tokens > c.max_seq_len) {
    return InvalidArgument(
        "prefix + max_new_tokens = " + std::to_string(fork_length + 1 + req.max_new_tokens - 1) +
        " positions exceed the model's max_seq_len " + std::to_string(c.max_seq_len));
  }
  const int child_capacity = fork_length + req.max_new_tokens;
  const int64_t pages =
      (held ? 0 : s.kv.PagesToCreate(fork_length)) +
      static_cast<int64_t>(s.kv.PagesToFork(fork_length, child_capacity)) * req.children.size();
  if (pages > s.kv.pool().num_free()) {
    return ResourceExhausted("task " + std::to_string(req.task.value()) + " needs " +
                             std::to_string(pages) + " KV pages, " +
                             std::to_string(s.kv.pool().num_free()) + " free");
  }

  // ---- commit: cannot fail ----
  Task task;
  task.submitted = Clock::now();
  task.result.task = req.task;
  task.result.weight_version = s.version;
  int32_t first_input;
  if (held) {
    task.parent = *req.parent;
    first_input = s.nodes.at(task.parent).last_token;
  } else {
    task.parent = req.parent ? *req.parent : NodeId(kReservedBit | s.next_anonymous++);
    first_input = req.prefix_tokens.back();
    task.prefill.assign(req.prefix_tokens.begin(), req.prefix_tokens.end() - 1);
    s.kv.Create(task.parent, fork_length);
    s.nodes[task.parent] = HeldNode{first_input, s.version, true, !req.parent.has_value()};
  }
  s.kv.Fork(task.parent, fork_length, req.children, child_capacity, /*copy_partial=*/held);
  req.prefix_tokens.clear();
  req.prefix_tokens.shrink_to_fit();
  for (size_t i = 0; i < req.children.size(); ++i) {
    RunningChild child;
    child.node = req.children[i];
    child.rng = NodeRng(req.seeds[i], child.node);
    child.next_input = first_input;
    child.ready = held;
    child.result.node = child.node;
    task.children.push_back(std::move(child));
  }
  task.request = std::move(req);
  s.tasks.push_back(std::move(task));
  if (s.tasks.back().prefill.empty() && !held) s.FinishPrefill(s.tasks.back());
  return OkStatus();
}

void Engine::State::FinishPrefill(Task& task) {
  for (RunningChild& child : task.children) {
    kv.CopyPartialPage(task.parent, child.node);
    child.ready = true;
  }
  HeldNode& parent = nodes.at(task.parent);
  if (parent.anonymous) {
    kv.Release(task.parent);
    nodes.erase(task.parent);
  } else {
    parent.busy = false;
  }
}

SegmentResult Engine::State::FinishTask(Task& task) {
  SegmentResult result = std::move(task.result);
  for (RunningChild& child : task.children) {
    if (task.request.keep_kv) {
      nodes[child.node] = HeldNode{child.next_input, version, false, false};
    } else {
      kv.Release(child.node);
    }
    result.children.push_back(std::move(child.result));
  }
  return result;
}

std::vector<SegmentResult> Engine::RunUntilIdle() {
  std::vector<SegmentResult> all;
  while (!Idle()) {
    for (SegmentResult& r : Step()) all.push_back(std::move(r));
  }
  return all;
}

bool Engine::Idle() const { return s_->tasks.empty(); }

Status Engine::Release(NodeId node) {
  auto it = s_->nodes.find(node);
  if (it == s_->nodes.end() && s_->kv.Contains(node) && !(node.value() & kReservedBit)) {
    return FailedPrecondition("node " + Id(node) + " is still decoding");
  }
  if (it == s_->nodes.end() || it->second.anonymous) {
    return NotFound("node " + Id(node) + " is not held");
  }
  if (it->second.busy) return FailedPrecondition("node " + Id(node) + " is still running");
  s_->kv.Release(node);
  s_->nodes.erase(it);
  return OkStatus();
}

bool Engine::Holds(NodeId node) const {
  auto it = s_->nodes.find(node);
  return it != s_->nodes.end() && !it->second.busy && !it->second.anonymous;
}

Result<KvExport> Engine::ExportNodes(std::span<const NodeId> nodes) const {
  for (NodeId n : nodes) {
    if (!Holds(n)) return NotFound("node " + Id(n) + " is not held idle here");
  }
  const KvCache& kv = s_->kv;
  const KvCache::ExportPlan plan = kv.PlanExport(nodes);
  KvExport out;
  out.n_pages = static_cast<int>(plan.pages.size());
  out.n_layers = kv.n_layers();
  out.page_size = kv.page_size();
  out.kv_dim = kv.kv_dim();
  out.data.resize(plan.pages.size() * kv.PageFloats());
  for (size_t i = 0; i < plan.pages.size(); ++i) {
    kv.ReadPage(plan.pages[i], out.data.data() + i * kv.PageFloats());
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    const HeldNode& h = s_->nodes.at(nodes[i]);
    out.nodes.push_back(
        KvExport::Node{nodes[i], kv.Length(nodes[i]), h.last_token, h.version, plan.tables[i]});
  }
  return out;
}

Status Engine::ImportNodes(const KvExport& e) {
  KvCache& kv = s_->kv;
  if (e.n_layers != kv.n_layers() || e.page_size != kv.page_size() || e.kv_dim != kv.kv_dim()) {
    return InvalidArgument("KV of " + std::to_string(e.n_layers) + " layers, page size " +
                           std::to_string(e.page_size) + ", kv_dim " + std::to_string(e.kv_dim) +
                           " does not fit this engine's (" + std::to_string(kv.n_layers()) + ", " +
                           std::to_string(kv.page_size()) + ", " + std::to_string(kv.kv_dim()) +
                           ")");
  }
  if (e.n_pages < 0 || e.data.size() != static_cast<size_t>(e.n_pages) * kv.PageFloats()) {
    return InvalidArgument("KV export holds " + std::to_string(e.data.size()) + " floats for " +
                           std::to_string(e.n_pages) + " pages");
  }
  std::vector<NodeId> ids;
  std::vector<int> lengths;
  std::vector<std::vector<uint32_t>> tables;
  std::unordered_set<NodeId> seen;
  const int vocab = s_->weights->config.vocab_size;
  for (const KvExport::Node& n : e.nodes) {
    if (n.node.value() == 0 || (n.node.value() & kReservedBit)) {
      return InvalidArgument("node id " + Id(n.node) + " reserved");
    }
    if (!seen.insert(n.node).second) return InvalidArgument("node " + Id(n.node) + " repeated");
    if (kv.Contains(n.node)) return AlreadyExists("node " + Id(n.node) + " is already held");
    if (n.length < 1 || n.length >= s_->weights->config.max_seq_len) {
      return InvalidArgument("node " + Id(n.node) + " has length " + std::to_string(n.length));
    }
    if (n.last_token < 0 || n.last_token >= vocab) {
      return InvalidArgument("node " + Id(n.node) + " pending token outside the vocabulary");
    }
    if (static_cast<int>(n.pages.size()) != kv.PagesToCreate(n.length)) {
      return InvalidArgument("node " + Id(n.node) + " has " + std::to_string(n.pages.size()) +
                             " pages for " + std::to_string(n.length) + " positions");
    }
    for (uint32_t p : n.pages) {
      if (p >= static_cast<uint32_t>(e.n_pages)) {
        return InvalidArgument("node " + Id(n.node) + " names page " + std::to_string(p) + " of " +
                               std::to_string(e.n_pages));
      }
    }
    ids.push_back(n.node);
    lengths.push_back(n.length);
    tables.push_back(n.pages);
  }
  if (!kv.HasFreePages(e.n_pages)) {
    return ResourceExhausted("importing " + std::to_string(ids.size()) + " nodes needs " +
                             std::to_string(e.n_pages) + " KV pages, " +
                             std::to_string(kv.pool().num_free()) + " free");
  }
  kv.Import(ids, lengths, tables, e.n_pages, e.data.data());
  for (const KvExport::Node& n : e.nodes) {
    s_->nodes[n.node] = HeldNode{n.last_token, n.version, false, false};
  }
  return OkStatus();
}

Status Engine::SwapWeights(std::shared_ptr<const model::ModelWeights> weights,
                           WeightVersion version) {
  if (weights == nullptr) return InvalidArgument("no weights");
  if (!Idle()) {
    return FailedPrecondition("cannot swap weights with " + std::to_string(s_->tasks.size()) +
                              " tasks in flight");
  }
  if (!SameShape(weights->config, s_->weights->config) || !weights->complete() ||
      weights->dtype != s_->weights->dtype) {
    return InvalidArgument("new weights have another shape: " + weights->config.ToString());
  }
  TREEPO_RETURN_IF_ERROR(s_->backend->SetWeights(weights));
  s_->weights = std::move(weights);
  s_->version = version;
  return OkStatus();
}

EngineLoad Engine::Load() const {
  EngineLoad load;
  load.tasks = static_cast<int>(s_->tasks.size());
  for (const Task& t : s_->tasks) {
    load.running_sequences += static_cast<int>(t.children.size()) - t.done_children;
    load.queued_prefill_tokens += static_cast<int64_t>(t.prefill.size()) - t.prefilled;
  }
  load.held_nodes = s_->kv.num_nodes();
  for (const auto& [id, node] : s_->nodes) load.held_nodes -= node.anonymous ? 1 : 0;
  load.pages = s_->kv.Stats();
  load.weight_version = s_->version;
  return load;
}

WeightVersion Engine::weight_version() const { return s_->version; }
const model::ModelConfig& Engine::config() const { return s_->weights->config; }
const KvCache& Engine::kv_cache() const { return s_->kv; }
double Engine::matmul_seconds() const { return s_->backend->stats().matmul_seconds; }
double Engine::matmul_flops() const { return s_->backend->stats().matmul_flops; }
std::string_view Engine::backend() const { return s_->backend->name(); }

}  // namespace treepo::worker
