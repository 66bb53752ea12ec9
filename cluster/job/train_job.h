// The `treepo train` job, one function per stage over one TrainJob: configure, make the base
// model, load the data, evaluate the base, start the processes, run the RL loop, collect the
// checkpoints, evaluate them, write the summary and report. `treepo train` runs them in order
// (RunTrainJob); a launcher that starts the processes elsewhere swaps the start stage.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster/child_process.h"
#include "cluster/job/train_options.h"
#include "cluster/job/train_processes.h"
#include "cluster/local_keys.h"
#include "common/config.h"
#include "common/status.h"
#include "scheduler/dataset/prompt_encoder.h"
#include "scheduler/dataset/task_source.h"

namespace treepo::cluster {

// The state of one run, filled in stage by stage.
struct TrainJob {
  TrainJobOptions options;
  std::vector<std::string> plugins;      // absolute paths, for the children
  std::unique_ptr<LocalCurveKeys> keys;  // scheduler.key_dir or scheduler.curve (else null)
  // The base's tokenizer (tokenizer.json or tokenizer.bin) and chat template, as the RL loop
  // encodes prompts (task.chat); eval finds them beside each checkpoint.
  std::shared_ptr<const scheduler::PromptEncoder> prompt_encoder;
  std::vector<scheduler::PromptRecord> train_records;
  std::string metrics_path;  // out_dir/metrics.jsonl
  std::string start_model;   // the base, or the checkpoint resumed from
  std::string logs_dir;      // out_dir/logs
  // Where the processes run (empty: this machine, every worker and learner) and the treepo
  // binary they run ("" = this one).
  std::vector<HostPlacement> placement;
  std::string executable;
  Supervisor children;             // the processes the start stage started (or their watchers)
  ProcessContext process_context;  // how they were started (for a restart)
  // How the start stage starts one planned process: a child of this one, or a launcher's
  // watcher of a process on another host (exits with it). A learner restart uses it again.
  // Null where the run starts nothing (Kubernetes Pods join by themselves).
  std::function<Result<ChildProcess>(const ProcessSpec&)> start_process;
  // The local log of a started process's child (its own log, or its watcher's output).
  std::function<std::string(const ProcessSpec&)> watch_log;
  // Stops what start_process left running on its host once its child is gone (remote
  // processes outlive their watchers); null where stopping the child stops the process.
  std::function<void(const ProcessSpec&)> stop_process;
  std::filesystem::file_time_type rl_started;  // checkpoints older than this are not this run's
  int learner_restarts = 0;
  scheduler::RlSummary rl_summary;             // after RunRlStage
  std::map<int64_t, std::string> checkpoints;  // step -> dir, this run's only
  nlohmann::json summary;                      // summary.json
};

// Reads the plug-ins and every option from `config` (unknown keys are errors), takes the CURVE
// keys (scheduler.key_dir, or ephemeral ones when scheduler.curve is on), and derives the
// dependent fields. Writes nothing.
Status LoadTrainJob(const Config& config, TrainJob* job);

// LoadTrainJob, then checks that out_dir can be written, adds out_dir/logs/train.log to the
// log's sinks, and logs the effective config.
Status ConfigureTrainJob(const Config& config, TrainJob* job);

// The model the processes start from (model.base, or the checkpoint `resume` names) and the
// learner's matching model or resume setting.
void SetStartModel(TrainJob* job);

// Makes the base model when it is missing (`treepo pretrain`'s job, model.make_if_missing) and
// loads its tokenizer.
Status PrepareBaseModel(TrainJob* job);

// Loads the train prompts; prepares metrics.jsonl (removed, or cut back to the resumed
// checkpoint's step) and the model the processes start from.
Status PrepareRunData(TrainJob* job);

// eval.before: the base model on the held-out split (not when resuming).
Status EvaluateBase(TrainJob* job);

// The endpoint the processes are given: scheduler.advertise with a "*" port replaced by the
// bound one, or the bound endpoint itself.
std::string AdvertisedEndpoint(const std::string& advertise, const std::string& bound);

// Every worker and learner of the run, serving `endpoint` (the learners' rendezvous set when
// there are several).
std::vector<ProcessSpec> PlanJobProcesses(TrainJob* job, const std::string& endpoint);

// Where the processes go: job.placement, or this machine with every worker and learner.
std::vector<HostPlacement> PlannedHosts(const TrainJob& job);

// Starts `specs` with job->start_process and watches them (job->children): a learner is
// essential, and restartable (by rank) when learner.on_failure = restart.
Status StartPlannedProcesses(TrainJob* job, const std::vector<ProcessSpec>& specs);

// Starts the workers and learners as child processes of this one, serving `endpoint`.
Status StartLocalProcesses(TrainJob* job, const std::string& endpoint);

// Writes out_dir/endpoint (for tools that talk to a running train), makes out_dir/logs, and
// runs the RL loop, calling `start(job, endpoint)` once the scheduler is bound; then waits for
// the learners' final checkpoint and stops the children. `stop` may be null.
using StartProcessesFn = std::function<Status(TrainJob*, const std::string&)>;
Status RunRlStage(TrainJob* job, const StartProcessesFn& start, const std::atomic<bool>* stop);

// Finds this run's checkpoints and gives each the base's tokenizer and task knobs, so that
// `treepo eval --model CHECKPOINT` reads it as it is.
Status CollectCheckpoints(TrainJob* job);

// eval.checkpoints: every intermediate checkpoint on the held-out split (the curve).
Status EvaluateCheckpoints(TrainJob* job);

// The summary (with eval.after's final evaluation), summary.json, the report (output.report),
// and the summary on stdout.
Status WriteTrainReport(TrainJob* job);

// Every stage in order, with the local launcher.
Status RunTrainJob(const Config& config, const std::atomic<bool>* stop);
// Every stage in order on `job` (its placement and executable set by the caller), the
// processes started by `start`.
Status RunTrainJob(const Config& config, TrainJob* job, const StartProcessesFn& start,
                   const std::atomic<bool>* stop);

// The file in out_dir that keeps the run's config (every key as given), so that
// `treepo train --resume RUN_DIR` continues the run with the same settings.
inline constexpr char kRunConfigFile[] = "run_config.json";
// The config of the run in `run_dir` (its kRunConfigFile) with `resume` set to the run dir:
// PrepareRunData then resumes from its newest complete checkpoint (docs/cluster-recovery.md).
Result<Config> LoadRunConfig(const std::string& run_dir);

}  // namespace treepo::cluster
