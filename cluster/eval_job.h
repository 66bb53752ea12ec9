// `treepo eval`: accuracy (greedy), Maj@k and pass@k (k samples at temperature 1) of a model
// on the held-out (or train) split of the built-in arithmetic task, or on a prompt file
// (JSON lines with prompt and answer fields), scored by a scheduler reward function ("math":
// the last \boxed{} answer). Sampling runs in process on the worker library's Engine (its
// public class): one greedy child and k sampled children per problem, batched over problems.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "common/status.h"
#include "scheduler/dataset/prompt_encoder.h"
#include "scheduler/task/arithmetic_task.h"

namespace treepo::cluster {

struct EvalOptions {
  std::string model_path;         // HF model dir or llama2.c .bin
  std::string tokenizer_path;     // "": the model's (<model dir>/tokenizer.json or .bin)
  int samples = 8;                // k: sampled answers per problem (0: greedy only)
  std::string split = "heldout";  // heldout | train (built-in task only)
  int problems = 200;             // problems evaluated (prompt file: its first N; 0 = all)
  std::string prompts_path;       // "": the built-in task
  // Prompt file fields; "" takes the set's own (MathEvalOptions by file stem: gsm8k, math500,
  // ...) or else "prompt" / "answer" with answer mode auto.
  std::string prompt_field;
  std::string answer_field;
  // Chat mode: each prompt as a user message rendered with the model's chat template.
  scheduler::ChatModeOptions chat;
  int max_new_tokens = 96;   // capped by the model's positions minus the longest prompt
  float temperature = 1.0f;  // for the k samples
  uint64_t seed = 1;         // problem set and sample seeds
  std::string reward = "math";
  std::string out_json;  // "": no file
  // Built-in task knobs; when has_task is false they are read from <model dir>/task.json
  // (defaults if absent).
  bool has_task = false;
  scheduler::ArithmeticOptions task;
  int batch_problems = 32;  // problems in flight in the engine at once
  int blas_threads = 0;
  bool progress = true;
  int show = 0;  // print the first N problems' greedy responses (with verdicts) to stdout
  std::string responses_out;  // "": none; else JSON lines, one per problem, every response

  Status Validate() const;
};

struct EvalReport {
  std::string model;
  std::string source;  // "arithmetic:heldout" or the prompt file
  int problems = 0;
  int samples = 0;                    // k
  double accuracy = 0.0;              // greedy
  double maj_at_k = 0.0;              // bootstrap Maj@k over the k samples (0 when k = 0)
  double pass_at_k = 0.0;             // unbiased pass@k, n = k (0 when k = 0)
  double pass_at_1 = 0.0;             // mean correctness of the samples (0 when k = 0)
  double boxed_rate = 0.0;            // fraction of greedy answers with a \boxed{}
  double mean_response_tokens = 0.0;  // over greedy and sampled responses
  int64_t tokens_generated = 0;
  double wall_s = 0.0;
};

Result<EvalReport> RunEval(const EvalOptions& options);

// One JSON object with every field above; ReadEvalReport reads it back (kDataLoss when
// malformed, kNotFound when absent).
std::string EvalReportJson(const EvalReport& report);
Result<EvalReport> ReadEvalReport(const std::string& path);
// A small aligned table for stdout.
void PrintEvalTable(const EvalReport& report, std::ostream& out);

}  // namespace treepo::cluster
