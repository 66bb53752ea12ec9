// The RL loop (docs/rl-loop.md): the scheduler's public entry point for `treepo train`.
//
// Each step takes queries_per_step prompts from the train records (a DatasetCursor), rolls
// them out on the workers (tree or sequential mode, scheduler/service), scores them, optionally
// applies DAPO dynamic sampling, sends the TreeBatch to the learner (each data-parallel rank
// its shard), and moves the workers to
// the learner's new weight version:
//   sync  - the step waits for TrainDone and for every worker's WeightAck of v+1, so the next
//           rollout runs on v+1 only;
//   async - the next rollout starts at once; rollout t waits only until every worker runs a
//           version >= t - max_staleness (versions count steps), so no node is extended with
//           weights more than max_staleness versions older than the newest. Workers swap
//           weights between segments, so a segment never mixes versions.
// One metrics JSON line per step goes to metrics_path (appended), the trees of each step to
// trees_dir/step_NNNNNN.jsonl (each node carries the weight version that computed it).
//
// Thread-safety: none; runs on the calling thread, which owns the scheduler service.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "scheduler/dataset/prompt_dataset.h"
#include "scheduler/dataset/prompt_encoder.h"
#include "scheduler/service/rollout_job.h"

namespace treepo::scheduler {

// Config keys in the comments (LoadRlOptions).
struct RlOptions {
  // rollout.{mode, width, segment_tokens, max_depth, branch, init_divergence,
  // max_init_divergence, temperature, top_p, top_k, reward, max_concurrent_queries}; seed;
  // scheduler.{heartbeat_interval_ms, heartbeat_timeout_ms, max_task_attempts,
  // wait_workers_timeout_ms} and the placement and deadline
  // keys (LoadDeadlineKeys); sync.{wait_learner_timeout_ms, train_timeout_ms}. A learner or
  // worker process that exits is noticed at once by the launcher's probe
  // (rollout.liveness_probe); the timeouts bound live processes that stop answering. The path
  // fields are not used.
  RolloutJobOptions rollout;
  int64_t steps = 20;              // steps: total RL steps (a resumed run continues up to it)
  int64_t start_step = 0;          // set from the checkpoint when resuming
  int queries_per_step = 16;       // rollout.queries_per_step: Q
  bool shuffle = true;             // rollout.shuffle: shuffled epochs over the train records
  bool dynamic_sampling = false;   // rollout.dynamic_sampling: DAPO: drop all-equal queries
  int max_extra_rounds = 2;        // rollout.max_extra_rounds: refill rounds per step
  std::string sync_mode = "sync";  // sync.mode: sync | async
  int max_staleness = 1;           // sync.max_staleness: async bound k (>= 1)
  int workers = 2;                 // workers to wait for before the first step
  // Data-parallel learner ranks (cluster.learners): each step's trees are split across them,
  // balanced by tokens (common/tree/tree_shards.h); rank 0 publishes and reports.
  int learners = 1;
  int wait_learner_timeout_ms = 120000;  // for the learner to register and publish
  int train_timeout_ms = 600000;         // for one TrainDone (and the weights' arrival)
  // Learner recovery. A learner that dies (its process exits: the launcher's probe calls
  // SchedulerService::LearnerGone; or it stops heartbeating for heartbeat_timeout_ms) fails the
  // run (learner.on_failure = fail), or (restart) the loop calls restart_learner, which starts a
  // new learner from the newest complete checkpoint; the loop waits for its registration and
  // its first weights (version = base + the checkpoint's step C) and sends the TreeBatches of
  // steps C.. again (steps already recorded are trained again, not recorded again), so the run
  // goes on with every step once. At most learner.max_restarts restarts per run.
  std::string learner_on_failure = "restart";  // learner.on_failure: restart | fail
  int max_learner_restarts = 3;                // learner.max_restarts
  std::function<Status(const std::string& why)> restart_learner;  // the launcher's; not a key
  // TreeBatches kept for a restart: the last keep_batches steps (the launcher sets it from the
  // checkpoint interval). Not a key.
  int64_t keep_batches = 1000000;
  // Prompts the dataset cursor had drawn before start_step (a resumed run's checkpoint
  // records it); -1: start_step x queries_per_step (exact without dynamic sampling). Not a key.
  int64_t start_cursor = -1;
  std::string metrics_path;  // metrics JSON lines (appended); "" = none
  std::string trees_dir;     // per-step tree files; "" = none
  bool progress = true;      // progress bar and a status line per step on stderr
  // The model's context in tokens (the launcher sets it from the model's config): a prompt
  // that leaves no room for max_depth x segment_tokens response tokens is skipped with a
  // warning, as `treepo rollout` does. 0 = unknown, no limit.
  int64_t max_seq_len = 0;
  // Settings shown on the dashboard ("key" -> "value"); not a config key.
  std::map<std::string, std::string> dashboard_config;

  Status Validate() const;
};

// Reads the keys above; absent keys keep their value. Does not check for unknown keys.
Status LoadRlOptions(const Config& config, RlOptions* options);

struct RlSummary {
  int64_t steps_done = 0;  // steps run by this call
  uint64_t final_version = 0;
  std::map<std::string, uint64_t> worker_versions;  // at the end, "name#id" -> version
  double wall_s = 0.0;
  double mean_step_s = 0.0;
  double first_reward_mean = 0.0, last_reward_mean = 0.0;
  double first_accuracy = 0.0, last_accuracy = 0.0;
  int64_t prompts_skipped = 0;  // train prompts too long for the context (RlOptions)
};

// Runs steps [start_step, steps). `train` are the prompts (with answers) to sample from,
// those too long for max_seq_len skipped (kInvalidArgument when that is all of them);
// `encoder` encodes prompts (chat mode included); its tokenizer decodes responses for the
// reward. `on_bound(endpoint)` runs
// once the scheduler is bound (start workers and the learner there). At the end the learner
// and every worker are sent Shutdown. `stop` may be null.
Result<RlSummary> RunRl(const RlOptions& options, std::vector<PromptRecord> train,
                        std::shared_ptr<const PromptEncoder> encoder,
                        const std::function<Status(const std::string&)>& on_bound,
                        const std::atomic<bool>* stop);

}  // namespace treepo::scheduler
