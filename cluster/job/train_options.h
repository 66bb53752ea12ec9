// The options of `treepo train` (configs/default.toml documents every key): the launcher's own
// keys (TrainOptions), the RL loop's (scheduler::RlOptions) and the learner's
// (learner::LearnerOptions), with the defaults of a `train` run. These structs are the only
// place the defaults live; train_options_test checks configs/default.toml against them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "learner/service/learner_service.h"
#include "scheduler/dataset/prompt_encoder.h"
#include "scheduler/rl/rl_loop.h"

namespace treepo::cluster {

// The launcher's own keys. Each field's comment names its key.
struct TrainOptions {
  std::string out_dir = "runs/default";  // out_dir
  std::string resume;                    // resume: checkpoint dir to continue from
  std::string base = "runs/base";        // model.base: base model dir (made if missing)
  bool make_base = true;                 // model.make_if_missing
  int pretrain_steps = 0;                // model.pretrain_steps (0: the pretrain default)
  std::string base_task = "arithmetic";  // model.task: the built-in task make_if_missing
                                         // pretrains (PretrainPreset: arithmetic | reasoning)
  std::string prompts;                   // task.prompts: JSONL prompt file ("" = built-in task)
  std::string prompt_field = "prompt";   // task.prompt_field
  std::string answer_field = "answer";   // task.answer_field
  // task.chat, task.system_prompt, task.instruction_suffix, task.enable_thinking: prompts (RL
  // and eval) as user messages rendered with the base model's chat template.
  scheduler::ChatModeOptions chat;
  int train_problems = 4000;  // task.train_problems: built-in task train set size
  int workers = 2;            // cluster.workers
  int learners = 2;           // cluster.learners: data-parallel learner processes
  // cluster.learner_command: a shell command run (once per rank) instead of the built-in
  // learner, e.g. "/usr/bin/python3 examples/torch_learner.py"; it gets TREEPO_* variables
  // (LearnerCommandArgv) and must serve the scheduler through libtreepo_client.
  std::string learner_command;
  int worker_threads = 1;                  // cluster.worker_threads
  std::string worker_sampler = "default";  // cluster.worker_sampler: token sampler name
  std::string worker_backend = "auto";     // cluster.worker_backend: cpu | cuda | auto
  int worker_pages = 2048;                 // cluster.worker_pages
  int page_size = 16;                      // cluster.page_size
  int learner_threads = 1;                 // cluster.learner_threads: BLAS threads per rank
  int learner_exit_timeout_ms = 120000;    // cluster.learner_exit_timeout_ms: final checkpoint
  // cluster.worker_rejoin_timeout_ms: a worker whose head dies keeps registering for this long
  // (`treepo worker --rejoin-timeout-ms`), so that `train --resume` on the same endpoint takes
  // it back; 0: it exits after its scheduler timeout.
  int worker_rejoin_timeout_ms = 120000;
  bool eval_before = true;       // eval.before
  bool eval_after = true;        // eval.after
  bool eval_checkpoints = true;  // eval.checkpoints: every intermediate checkpoint too
  int eval_problems = 200;       // eval.problems
  int eval_samples = 8;          // eval.samples (k for Maj@k / pass@k)
  int eval_max_new_tokens = 96;  // eval.max_new_tokens
  int checkpoint_every = 10;     // output.checkpoint_every (0: at the end only)
  bool write_trees = true;       // output.trees
  bool report = true;            // output.report
  bool progress = true;          // output.progress
  bool curve = false;            // scheduler.curve: ephemeral CURVE keys for the children
  // scheduler.key_dir: CURVE keys from a directory (scheduler, worker and learner NAME.key and
  // NAME.pub, `treepo keys --role NAME`) instead of ephemeral ones; "" = none.
  std::string key_dir;
  // scheduler.advertise: the endpoint the processes are given ("" = the bound one); a "*" port
  // is replaced by the bound port. For a bind on every interface (tcp://0.0.0.0:PORT).
  std::string advertise;

  Status Validate() const;
};

// The RL loop's defaults for `train` (they differ from `treepo rollout`'s: more steps, wider
// trees, the dashboard on, and task attempts that outlast a weight swap).
scheduler::RlOptions TrainRlDefaults();
// The learner's defaults for `train` (a learning rate and warm-up for the small models).
learner::LearnerOptions TrainLearnerDefaults();

// Everything `train` reads from its config.
struct TrainJobOptions {
  TrainOptions train;
  scheduler::RlOptions rl = TrainRlDefaults();
  learner::LearnerOptions learner = TrainLearnerDefaults();
};

// The learner keys that `train` sets from others (a config that sets them is refused).
const std::vector<std::string>& DerivedLearnerKeys();

// Reads every key of `train` from `config` (absent keys keep their value), refuses the derived
// learner keys, then fails on keys nobody read (Config::CheckAllConsumed), so the caller reads
// its own keys (`plugins`) first. Validates the launcher's keys.
Status LoadTrainJobOptions(const Config& config, TrainJobOptions* options);

// Sets the fields that follow from others (worker and learner counts, the learner's threads,
// checkpoint dir and cadence, staleness) and the dashboard's URL file; call once after loading.
void DeriveTrainJobOptions(TrainJobOptions* options);

// Every key of `train` -> its value as the config would spell it (the derived learner keys
// too): the effective config for the log and the dashboard.
std::map<std::string, std::string> TrainSettings(const TrainJobOptions& options);

}  // namespace treepo::cluster
