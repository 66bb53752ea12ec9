// A whole rollout job: read a prompt file, bind the scheduler, wait for workers, roll every
// prompt out as a TreePO tree (or sequential samples), score, write the tree file and a
// summary. This is the scheduler's one public entry point for the `treepo scheduler` and
// `treepo rollout` commands (options in, run until the rollout completes or is stopped).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "common/config.h"
#include "common/status.h"
#include "scheduler/dashboard/dashboard.h"
#include "scheduler/dataset/prompt_encoder.h"
#include "scheduler/service/rollout_runner.h"
#include "scheduler/service/scheduler_service.h"

namespace treepo::scheduler {

// Every field can be set from a TOML file or `--set key=value` under the key named in its
// comment (LoadRolloutJobOptions).
struct RolloutJobOptions {
  std::string tokenizer_path;           // tokenizer: tokenizer.json, llama2.c tokenizer.bin or a
                                        // directory ("" = the one beside model)
  int vocab_size = 0;                   // vocab_size: the model's vocabulary (0: from model_path)
  std::string model_path;               // model: only read for vocab_size when that is 0
  std::string prompts_path;             // prompts: JSON lines {"id","prompt","answer"}
  std::string prompt_field = "prompt";  // prompt_field
  std::string answer_field = "answer";  // answer_field ("" = no answers)
  ChatModeOptions chat;       // chat, system_prompt, instruction_suffix, enable_thinking: prompts
                              // as user messages rendered with the model's chat template
  int64_t max_queries = 0;    // max_queries: first N prompts only (0 = all)
  std::string mode = "tree";  // mode: tree | sequential
  int width = 4;              // width: leaves per query (w)
  int segment_tokens = 16;    // segment_tokens: L
  int max_depth = 4;          // max_depth: d
  int branch = 2;             // branch: b
  std::string init_divergence = "fixed";  // init_divergence: fixed | more
  int max_init_divergence = 8;            // max_init_divergence: k_max for "more"
  float temperature = 1.0f;               // temperature
  float top_p = 1.0f;                     // top_p
  int top_k = 0;                          // top_k (0 = off)
  uint64_t seed = 1;                    // seed: run seed (child seeds and node ids derive from it)
  std::string reward = "math";          // reward: reward function name
  std::string branching = "fixed_avg";  // branching: branching policy name (docs/plugins.md)
  std::string extra_stop_rules;         // extra_stop_rules: stop rule names, comma-separated,
                                        // checked after the built-in rules ("" = none)
  int max_concurrent_queries = 8;       // max_concurrent_queries
  int min_workers = 1;                  // min_workers: start once this many registered
  int wait_workers_timeout_ms = 30000;  // wait_workers_timeout_ms
  std::string out_path;                 // out: tree file (JSONL); "" = none
  std::string summary_path;             // summary_out: summary JSON; "" = none
  bool progress = true;                 // progress: progress bar on stderr
  SchedulerOptions service;             // bind, heartbeat_interval_ms, heartbeat_timeout_ms,
                                        // the placement keys (LoadPlacementKeys),
                                        // the deadline keys (LoadDeadlineKeys)
  dashboard::DashboardOptions dashboard;  // dashboard.*: off unless dashboard.enabled
  // Not a config key: the launcher's check of its child processes, run by every Pump of the
  // scheduler (SchedulerService::set_liveness_probe). Empty: none.
  LivenessProbe liveness_probe;

  Status Validate() const;
};

// Reads every key above from `config` (absent keys keep their value), then fails on keys
// nobody read (Config::CheckAllConsumed). Keys of other commands can be read first by the
// caller so that they count as consumed.
Status LoadRolloutJobOptions(const Config& config, RolloutJobOptions* options);

// The summary JSON (one object): queries, leaves, wall_s, trajectories_per_s, tokens_per_s,
// tokens_decoded, tokens_prefilled, unique_tree_tokens, segments, tasks, redispatched_tasks,
// prompts_skipped, mean_reward, worker_utilisation ({name: fraction}), workers (details), options.
std::string RolloutSummaryJson(const RolloutOutput& output, const RolloutJobOptions& options);

// Runs the job. Every prompt is tokenized before the Router is bound; a prompt that leaves no
// room for max_depth x segment_tokens response tokens in the model's context is skipped with a
// warning (stats.prompts_skipped). `on_bound(endpoint)` runs once the Router is bound, before
// waiting for workers (the local launcher starts its workers there). After the rollout every worker
// is sent Shutdown. `stop` may be null.
Result<RolloutOutput> RunRolloutJob(const RolloutJobOptions& options,
                                    const std::function<Status(const std::string&)>& on_bound,
                                    const std::atomic<bool>* stop);

}  // namespace treepo::scheduler
