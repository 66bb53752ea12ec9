// `treepo pretrain`: build a next-token-prediction corpus of worked solutions from a built-in
// task (scheduler/task: `arithmetic`, the default, or `reasoning`), train a small base model on it
// with the learner's pretraining loop (learner/pretrain), and write a model directory that every
// other command loads: config.json + model.safetensors (Hugging Face layout), tokenizer.bin
// (llama2.c format) and task.json (the task knobs, so `treepo eval` samples the same task).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "scheduler/task/arithmetic_task.h"
#include "scheduler/task/reasoning_task.h"

namespace treepo::cluster {

// The built-in task's knobs (docs/builtin-task.md): sums of 3 to 5 one-digit terms with some
// subtraction, so the worked solution is a chain of 2 to 4 small steps over two-digit running
// values.
inline scheduler::ArithmeticOptions BuiltinTaskOptions() {
  scheduler::ArithmeticOptions t;
  t.min_terms = 3;
  t.max_terms = 5;
  t.min_digits = 1;
  t.max_digits = 1;
  return t;
}

struct PretrainOptions {
  std::string out_dir;  // created if absent; existing files in it are overwritten
  uint64_t seed = 1;    // model init, corpus and batch order: the run is a function of it

  // Model shape (vocab = the task tokenizer's; RoPE adjacent pairs, tied embeddings).
  int dim = 128;
  int hidden_dim = 352;
  int n_layers = 4;
  int n_heads = 4;
  int n_kv_heads = 4;
  int max_seq_len = 128;

  // Training.
  int steps = 1000;     // optimiser steps
  int batch_size = 32;  // sequences per step
  float lr = 2e-3f;     // after a linear warm-up over warmup_steps
  int warmup_steps = 30;
  float min_lr_ratio = 0.1f;  // cosine decay to lr * this at the last step (1: constant)
  float weight_decay = 0.1f;
  bool loss_on_prompt = false;  // false: loss on solution tokens (+ EOS) only
  int log_every = 25;           // a loss line on stdout every N steps (0: none)
  int blas_threads = 0;         // 0: leave OpenBLAS's setting

  // Corpus: the task's train split with these knobs (task.task: "arithmetic" or "reasoning";
  // PretrainPreset gives each one's defaults).
  scheduler::ArithmeticOptions task = BuiltinTaskOptions();
  int corpus_problems = 20000;  // distinct train problems (fewer if the space is smaller)
  // Share of corpus solutions written as the bare answer (" \boxed{N}", still correct) instead
  // of the worked steps: a base model that often answers without working, as web-trained models
  // do, which RL can learn to stop doing. Drawn per problem from the seed.
  double direct_answer_share = 0.5;
  // Share of those bare answers that are a careless guess: off by 1..9 either way (never
  // negative). Worked solutions are always right.
  double direct_answer_error = 0.7;
  // Reasoning task: share of solutions with one slip in the middle: a step from slip_from on
  // (0-based) whose result is off by 1..slip_max_delta, the chain going on correctly from the
  // wrong value (scheduler/task/reasoning_task.h). Drawn per problem from the seed.
  double slip_share = 0.0;
  int slip_max_delta = 3;
  int slip_from = 1;  // the first step (0-based) a slip can be in

  // Held-out greedy accuracy of the result on this many problems (0: skip).
  int eval_problems = 200;
  int eval_max_new_tokens = 64;  // capped at max_seq_len - 32 (room for the prompt)

  Status Validate() const;
};

struct PretrainOutput {
  std::string model_dir;       // == out_dir
  std::string tokenizer_path;  // out_dir/tokenizer.bin
  int64_t num_params = 0;
  int64_t tokens_trained = 0;    // sequence tokens over all steps
  double wall_s = 0.0;           // training only
  double first_loss = 0.0;       // mean per loss token, first step
  double final_loss = 0.0;       // mean per loss token, mean of the last log_every steps
  double heldout_accuracy = -1;  // greedy, eval_problems held-out problems; -1 when skipped
};

// The defaults for a built-in task: "arithmetic" (the fields' defaults above) or "reasoning"
// (6 to 9 steps, half the chains with a slip in the 4th step or later; 160 positions; 800 steps
// of 24 sequences). Unknown names are kInvalidArgument.
Result<PretrainOptions> PretrainPreset(std::string_view task_name);

// Runs the whole job; logs to stderr, prints "step N loss L lr R tok/s T" lines to stdout.
Result<PretrainOutput> RunPretrain(const PretrainOptions& options);

// Task knobs as JSON (task.json in a model dir, the task's name under "task") and back. Reading
// refuses malformed JSON (kDataLoss) and values that do not validate, an unknown task among
// them (kInvalidArgument); absent keys keep defaults (no "task": arithmetic).
std::string TaskOptionsJson(const scheduler::ArithmeticOptions& options);
Result<scheduler::ArithmeticOptions> ReadTaskOptions(const std::string& path);

}  // namespace treepo::cluster
