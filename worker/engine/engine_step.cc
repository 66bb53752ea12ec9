// Engine::Step: gather the rows of every running sequence, run one forward, sample.
#include <algorithm>
#include <cstring>

#include "worker/engine/engine.h"
#include "worker/engine/engine_state.h"

namespace treepo::worker {

std::vector<SegmentResult> Engine::Step() {
  State& s = *s_;
  const int vocab = s.weights->config.vocab_size;
  const Clock::time_point start = Clock::now();
  s.tokens.clear();
  s.seqs.clear();
  s.entries.clear();
  s.logit_rows.clear();

  auto add = [&](int task, int child, std::span<const int32_t> block_table, int start_pos,
                 std::span<const int32_t> rows, bool logits) {
    StepEntry e{task, child, static_cast<int>(s.tokens.size()), static_cast<int>(rows.size()),
                logits ? static_cast<int>(s.logit_rows.size()) : -1};
    s.seqs.push_back(compute::SeqSlice{block_table, start_pos, e.num_rows});
    for (int i = 0; i < e.num_rows; ++i) {
      if (logits) s.logit_rows.push_back(e.first_row + i);
      s.tokens.push_back(rows[i]);
    }
    s.entries.push_back(e);
  };

  // Decode rows first (one per ready child), then prefill chunks in admission order.
  for (int t = 0; t < static_cast<int>(s.tasks.size()); ++t) {
    Task& task = s.tasks[t];
    for (int c = 0; c < static_cast<int>(task.children.size()); ++c) {
      RunningChild& child = task.children[c];
      if (!child.ready || child.done) continue;
      add(t, c, s.kv.BlockTable(child.node), s.kv.Length(child.node),
          std::span<const int32_t>(&child.next_input, 1), true);
    }
  }
  int budget = s.options.max_step_tokens - static_cast<int>(s.tokens.size());
  for (int t = 0; t < static_cast<int>(s.tasks.size()) && budget > 0; ++t) {
    Task& task = s.tasks[t];
    const int left = static_cast<int>(task.prefill.size()) - task.prefilled;
    if (left == 0) continue;
    const int n = std::min(left, budget);
    budget -= n;
    add(t, -1, s.kv.BlockTable(task.parent), task.prefilled,
        std::span<const int32_t>(task.prefill).subspan(task.prefilled, n),
        task.request.return_logits);
  }

  // Every task in this step has now started running.
  for (const StepEntry& e : s.entries) {
    Task& task = s.tasks[e.task];
    if (!task.started) {
      task.started = true;
      for (RunningChild& child : task.children)
        child.result.timings.queue_ms = Ms(task.submitted, start);
      if (e.child < 0) task.prefill_start = start;
    }
    if (e.child >= 0 && !task.children[e.child].started) {
      task.children[e.child].started = true;
      task.children[e.child].decode_start = start;
    }
  }

  if (!s.tokens.empty()) {
    const size_t need = s.logit_rows.size() * static_cast<size_t>(vocab);
    if (s.logits.size() < need) s.logits.resize(need);
    s.backend->Forward(compute::ForwardBatch{s.tokens, s.seqs, s.logit_rows}, s.logits.data());
  }
  const Clock::time_point end = Clock::now();

  for (const StepEntry& e : s.entries) {
    Task& task = s.tasks[e.task];
    const float* logits = s.logits.data() + static_cast<size_t>(std::max(e.first_logit, 0)) * vocab;
    if (e.child < 0) {
      task.prefilled += e.num_rows;
      s.kv.SetLength(task.parent, task.prefilled);
      if (e.first_logit >= 0) {
        task.result.prefix_logits.insert(task.result.prefix_logits.end(), logits,
                                         logits + static_cast<size_t>(e.num_rows) * vocab);
      }
      if (task.prefilled == static_cast<int>(task.prefill.size())) {
        task.result.prefilled_tokens = task.prefilled;
        for (RunningChild& child : task.children)
          child.result.timings.prefill_ms = Ms(task.prefill_start, end);
        s.FinishPrefill(task);
      }
      continue;
    }
    RunningChild& child = task.children[e.child];
    const SegmentRequest& req = task.request;
    const Sample sample = s.sampler->Draw(logits, vocab, req.sampling, &child.rng);
    ChildResult& r = child.result;
    r.tokens.push_back(sample.token);
    r.logprobs.push_back(sample.logprob);
    if (req.return_logits) r.logits.insert(r.logits.end(), logits, logits + vocab);
    s.kv.SetLength(child.node, s.kv.Length(child.node) + 1);
    child.next_input = sample.token;
    const bool eos = req.sampling.stop_at_eos && s.weights->config.IsEos(sample.token);
    if (eos || static_cast<int>(r.tokens.size()) == req.max_new_tokens) {
      r.finish = eos ? FinishReason::kEos : FinishReason::kLength;
      r.timings.decode_ms = Ms(child.decode_start, end);
      child.done = true;
      ++task.done_children;
      s.kv.Trim(child.node);
    }
  }

  // Retire finished tasks, keeping admission order.
  std::vector<SegmentResult> finished;
  size_t kept = 0;
  for (size_t t = 0; t < s.tasks.size(); ++t) {
    Task& task = s.tasks[t];
    if (task.done_children == static_cast<int>(task.children.size())) {
      finished.push_back(s.FinishTask(task));
    } else {
      if (kept != t) s.tasks[kept] = std::move(task);
      ++kept;
    }
  }
  s.tasks.resize(kept);
  return finished;
}

}  // namespace treepo::worker
