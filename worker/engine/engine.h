// The continuous-batching inference engine over a compute backend (paged KV).
//
// A caller submits segment tasks: "fork node P into children C1..Ck and decode up to L tokens
// for each, with these sampling parameters and per-child seeds". Each Step() admits and
// retires work and runs ONE forward pass over every running sequence: decode tokens of all
// running children plus prefill chunks of tasks whose parent must first be computed from its
// prefix tokens (chunked under a per-step token budget). Step() returns the tasks that
// finished in that step.
//
// Nodes. A node is a token path. The engine holds a node's KV for all of its tokens but the
// last, which it keeps as the node's pending token: a child's first decode row feeds the
// parent's last token, so a node that is only ever forked never needs logits stored. After a
// task finishes, its children stay held (unless keep_kv is false) so later tasks can fork
// them; Release() frees them. Node ids are the caller's (unique within a run); ids with the
// top bit set are reserved for the engine.
//
// Pages. Submit() plans every page the task will need (prefill of the parent, each child's
// copy of the partial last page and room for L tokens) and either takes them all or returns
// kResourceExhausted and changes nothing; Step() never allocates. A child that stops early
// (EOS) returns its unused pages when it finishes.
//
// Weights and versions. KV is tagged with the weight version that computed it; forking a node
// of another version is refused (kFailedPrecondition): release it and resubmit with its
// prefix. SwapWeights() is accepted only when no task is in flight.
//
// Backends (common/compute/decoder_backend.h): the engine keeps the bookkeeping (pages, nodes,
// sampling streams) and hands the backend the forward pass and the page storage: "cpu" (fp32,
// host memory) or "cuda" (bf16 on the device); sampling runs on the host from the logits.
//
// Numerics on the cpu backend: batch-invariant (cpu::Forward). A child's logits, tokens and
// log-probs are bitwise the same whatever else runs in its steps, however its parent's prefix
// was computed (prefilled in any chunks, decoded, forked), with any page size and thread count.
//
// Thread-safety: none. One thread owns the engine and calls everything on it; the forward
// runs its own helper threads inside a step.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/model/weights.h"
#include "common/status.h"
#include "worker/engine/sampler.h"
#include "worker/kv/kv_cache.h"

namespace treepo::worker {

struct EngineOptions {
  KvCacheOptions kv;          // page_size (tokens per page) and num_pages
  int max_step_tokens = 512;  // rows per step; decode rows always run, prefill gets the rest
  // Threads of a step's matrix products and attention (cpu::SetCpuThreads, and OpenBLAS's);
  // 0: leave the process's setting. Results do not depend on it (see below).
  int blas_threads = 0;
  // TokenSamplers() name of the token sampler ("default": temperature, top-k, top-p).
  std::string sampler = "default";
  // Compute backend: cpu | cuda | auto (cuda when this build has it and a device is present).
  // The library's default is cpu (exact, what tests compare against); `treepo worker`'s is auto.
  std::string backend = "cpu";
  int device = 0;  // cuda: the device ordinal

  Status Validate() const;
};

// One segment task.
struct SegmentRequest {
  TaskId task;
  // The node to continue. Held and idle: its KV is forked (prefix_tokens ignored). Not held:
  // it is computed from prefix_tokens (its whole token path, prompt + response so far) and
  // then held until Release(). nullopt: an anonymous parent computed from prefix_tokens and
  // dropped once its children have forked.
  std::optional<NodeId> parent;
  std::vector<int32_t> prefix_tokens;  // needed unless the parent is held; >= 1 token
  std::vector<NodeId> children;        // new nodes, >= 1, none held
  std::vector<uint64_t> seeds;         // one per child: the child's stream is NodeRng(seed, id)
  int max_new_tokens = 0;              // L >= 1
  SamplingParams sampling;
  WeightVersion weight_version;  // must equal the engine's version
  bool keep_kv = true;           // hold children after they finish (until Release)
  bool return_logits = false;    // fill SegmentResult::prefix_logits and ChildResult::logits
};

enum class FinishReason { kEos, kLength };
const char* FinishReasonName(FinishReason reason);

struct Timings {
  double queue_ms = 0.0;    // Submit() to the start of the first step that ran the task
  double prefill_ms = 0.0;  // start of the first prefill step to the end of the last
  double decode_ms = 0.0;   // start of the child's first decode step to the end of its last
};

struct ChildResult {
  NodeId node;
  std::vector<int32_t> tokens;  // sampled tokens (ends with EOS when finish is kEos)
  std::vector<float> logprobs;  // per token; see Sample::logprob
  FinishReason finish = FinishReason::kLength;
  Timings timings;
  std::vector<float> logits;  // return_logits: [tokens.size(), vocab], the row behind each token
};

struct SegmentResult {
  TaskId task;
  WeightVersion weight_version;
  std::vector<ChildResult> children;  // in request order
  int prefilled_tokens = 0;           // positions this task computed for its parent
  // return_logits: [prefilled_tokens, vocab]: the logits after each prefilled position, i.e.
  // rows for prefix positions 0..n-2; row n-1 is each child's first logits row.
  std::vector<float> prefix_logits;
};

// Held nodes' KV in a form another engine can import (subtree migration, docs/placement.md).
struct KvExport {
  struct Node {
    NodeId node;
    int length = 0;          // positions in the KV
    int32_t last_token = 0;  // the pending token
    WeightVersion version;
    std::vector<uint32_t> pages;  // indices into the export's pages
  };
  std::vector<Node> nodes;
  int n_pages = 0;
  int n_layers = 0, page_size = 0, kv_dim = 0;
  std::vector<float> data;  // n_pages pages of KvCache::PageFloats() floats
};

struct EngineLoad {
  int tasks = 0;                      // submitted and not finished
  int running_sequences = 0;          // children still decoding (or waiting for their parent)
  int64_t queued_prefill_tokens = 0;  // prefix positions still to compute
  int held_nodes = 0;                 // nodes whose KV the engine holds (running or idle)
  PageStats pages;
  WeightVersion weight_version;
};

class Engine {
 public:
  // kInvalidArgument on bad options or weights whose config does not validate; the backend's
  // error when it cannot be had (no CUDA in this build or no device for "cuda", too little
  // device memory).
  static Result<std::unique_ptr<Engine>> Create(std::shared_ptr<const model::ModelWeights> weights,
                                                WeightVersion version,
                                                const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates and admits a task, taking every page it will need. Errors change nothing:
  //   kInvalidArgument    malformed (no children, bad token, seeds mismatch, too long, ...)
  //   kAlreadyExists      a child id is already held
  //   kNotFound           the parent is not held and no prefix was given
  //   kFailedPrecondition the parent is busy (prefilling or decoding), or its KV or the
  //                       request is of another weight version
  //   kResourceExhausted  not enough free pages now: retry later or elsewhere
  Status Submit(SegmentRequest request);

  // Runs one forward pass over all running work; returns the tasks finished in it.
  std::vector<SegmentResult> Step();
  // Steps until no task is in flight.
  std::vector<SegmentResult> RunUntilIdle();
  bool Idle() const;

  // Frees a held node's pages (shared pages stay while other nodes use them).
  // kNotFound if not held, kFailedPrecondition while it is running or prefilling.
  Status Release(NodeId node);
  // True when `node` is held and idle (can be forked or released).
  bool Holds(NodeId node) const;

  // The KV of held, idle nodes (pages they share are exported once). kNotFound when one is
  // not held or is running.
  Result<KvExport> ExportNodes(std::span<const NodeId> nodes) const;
  // Holds the exported nodes as if computed here. Nothing changes on error:
  //   kInvalidArgument    another page size / layer count / kv_dim, or a malformed export
  //   kAlreadyExists      a node is already held (or running)
  //   kResourceExhausted  not enough free pages
  Status ImportNodes(const KvExport& kv);
  // Pages ImportNodes(kv) takes.
  int PagesToImport(const KvExport& kv) const { return kv.n_pages; }

  // Replaces the weights between segments. kFailedPrecondition while any task is in flight;
  // kInvalidArgument if the shape differs. Held nodes keep their old version tag.
  Status SwapWeights(std::shared_ptr<const model::ModelWeights> weights, WeightVersion version);

  EngineLoad Load() const;
  WeightVersion weight_version() const;
  const model::ModelConfig& config() const;
  const KvCache& kv_cache() const;
  // The backend's name ("cpu" | "cuda").
  std::string_view backend() const;
  // Matrix-product time and flops of every forward so far (benchmarks).
  double matmul_seconds() const;
  double matmul_flops() const;

 private:
  struct State;
  explicit Engine(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace treepo::worker
