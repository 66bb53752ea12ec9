// Internal to the engine (engine.cc, engine_step.cc): the state behind Engine.
#pragma once

#include <chrono>
#include <random>
#include <unordered_map>
#include <vector>

#include "common/compute/decoder_backend.h"
#include "worker/engine/engine.h"

namespace treepo::worker {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b);

// A node the engine holds, beyond its pages (which KvCache owns).
struct HeldNode {
  int32_t last_token = 0;  // pending: not yet in the KV
  WeightVersion version;
  bool busy = false;       // prefilling, or a child still decoding
  bool anonymous = false;  // a nullopt parent: dropped once its children have forked
};

struct RunningChild {
  NodeId node;
  std::mt19937_64 rng;
  int32_t next_input = 0;  // the token its next decode row feeds
  bool ready = false;      // its partial page has been copied from the parent
  bool done = false;
  bool started = false;
  Clock::time_point decode_start;
  ChildResult result;
};

struct Task {
  SegmentRequest request;  // prefix_tokens moved into `prefill`
  NodeId parent;
  std::vector<int32_t> prefill;  // parent positions to compute (prefix minus its last token)
  int prefilled = 0;
  std::vector<RunningChild> children;
  int done_children = 0;
  Clock::time_point submitted;
  bool started = false;
  Clock::time_point prefill_start;
  SegmentResult result;
};

// What one row range of the current step belongs to.
struct StepEntry {
  int task = 0;
  int child = -1;     // -1: a prefill chunk of the task's parent
  int first_row = 0;  // into the step's rows
  int num_rows = 0;
  int first_logit = -1;  // into the step's logits, or -1
};

struct Engine::State {
  std::shared_ptr<const model::ModelWeights> weights;
  WeightVersion version;
  EngineOptions options;
  std::unique_ptr<compute::DecoderBackend> backend;  // never null; declared before kv
  KvCache kv;
  std::unordered_map<NodeId, HeldNode> nodes;
  std::vector<Task> tasks;  // admission order
  uint64_t next_anonymous = 0;

  // Step scratch, reused so that a warm step allocates nothing.
  std::unique_ptr<TokenSampler> sampler;  // never null
  std::vector<int32_t> tokens, logit_rows;
  std::vector<compute::SeqSlice> seqs;
  std::vector<StepEntry> entries;
  std::vector<float> logits;

  State(std::shared_ptr<const model::ModelWeights> w, WeightVersion v, const EngineOptions& o,
        std::unique_ptr<compute::DecoderBackend> b)
      : weights(std::move(w)),
        version(v),
        options(o),
        backend(std::move(b)),
        kv(o.kv, &backend->kv()) {}

  // After the parent's positions are all computed: copy partial pages into the children,
  // mark them ready, free the parent (idle, or dropped when anonymous).
  void FinishPrefill(Task& task);
  // After the last child finished: hand children to `nodes` (or release), fill the result.
  SegmentResult FinishTask(Task& task);
};

}  // namespace treepo::worker
