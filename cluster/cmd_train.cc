// `treepo train [--config FILE] [--set key=value ...]`: TreePO RL end to end on one machine.
//
// With no arguments it runs the built-in default (configs/default.toml documents every key):
// makes the base model if missing (`treepo pretrain`'s job, into model.base), evaluates it on
// the held-out split, starts the scheduler and the RL loop in this process and the workers and
// the learner as child processes on loopback (this same binary), trains, evaluates the final
// checkpoint, and writes metrics.jsonl, checkpoints/, trees/, eval_*.json, summary.json and a
// report (report.md, curves.png) into out_dir. `resume = DIR` continues from a checkpoint.
// Logs and a status line per step go to stderr; the summary JSON to stdout.

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cluster/child_process.h"
#include "cluster/command.h"
#include "cluster/eval_job.h"
#include "cluster/local_keys.h"
#include "cluster/plugins.h"
#include "cluster/pretrain_job.h"
#include "cluster/report.h"
#include "cluster/run_metrics.h"
#include "common/atomic_file.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/file_io.h"
#include "common/line_appender.h"
#include "common/log.h"
#include "common/model/safetensors.h"
#include "common/model/text_tokenizer.h"
#include "learner/service/checkpoint.h"
#include "learner/service/learner_service.h"
#include "scheduler/dataset/task_source.h"
#include "scheduler/rl/rl_loop.h"

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_train_stop{false};
void OnTrainSignal(int) { g_train_stop.store(true); }

// The launcher's own keys (the RL loop's and the learner's are read by their components).
struct TrainOptions {
  std::string out_dir = "runs/default";  // out_dir
  std::string resume;                    // resume: checkpoint dir to continue from
  std::string base = "runs/base";        // model.base: base model dir (made if missing)
  bool make_base = true;                 // model.make_if_missing
  int pretrain_steps = 0;                // model.pretrain_steps (0: the pretrain default)
  std::string prompts;                   // task.prompts: JSONL prompt file ("" = built-in task)
  std::string prompt_field = "prompt";   // task.prompt_field
  std::string answer_field = "answer";   // task.answer_field
  // task.chat, task.system_prompt, task.instruction_suffix, task.enable_thinking: prompts (RL
  // and eval) as user messages rendered with the base model's chat template.
  scheduler::ChatModeOptions chat;
  int train_problems = 4000;  // task.train_problems: built-in task train set size
  int workers = 2;            // cluster.workers
  int learners = 1;           // cluster.learners: data-parallel learner processes
  // cluster.learner_command: a shell command run (once per rank) instead of the built-in
  // learner, e.g. "/usr/bin/python3 examples/torch_learner.py"; it gets TREEPO_* variables
  // (LearnerCommandEnv) and must serve the scheduler through libtreepo_client.
  std::string learner_command;
  int worker_threads = 1;                // cluster.worker_threads
  int worker_pages = 2048;               // cluster.worker_pages
  int page_size = 16;                    // cluster.page_size
  int learner_threads = 2;               // cluster.learner_threads
  int learner_exit_timeout_ms = 120000;  // cluster.learner_exit_timeout_ms: final checkpoint
  bool eval_before = true;               // eval.before
  bool eval_after = true;                // eval.after
  bool eval_checkpoints = true;          // eval.checkpoints: every intermediate checkpoint too
  int eval_problems = 200;               // eval.problems
  int eval_samples = 8;                  // eval.samples (k for Maj@k / pass@k)
  int eval_max_new_tokens = 96;          // eval.max_new_tokens
  int checkpoint_every = 10;             // output.checkpoint_every (0: at the end only)
  bool write_trees = true;               // output.trees
  bool report = true;                    // output.report
  bool progress = true;                  // output.progress

  std::string worker_sampler = "default";  // cluster.worker_sampler: token sampler name
};

Status LoadTrainOptions(const Config& c, TrainOptions* o) {
  TREEPO_RETURN_IF_ERROR(c.Get("out_dir", &o->out_dir));
  TREEPO_RETURN_IF_ERROR(c.Get("resume", &o->resume));
  TREEPO_RETURN_IF_ERROR(c.Get("model.base", &o->base));
  TREEPO_RETURN_IF_ERROR(c.Get("model.make_if_missing", &o->make_base));
  TREEPO_RETURN_IF_ERROR(c.Get("model.pretrain_steps", &o->pretrain_steps));
  TREEPO_RETURN_IF_ERROR(c.Get("task.prompts", &o->prompts));
  TREEPO_RETURN_IF_ERROR(c.Get("task.prompt_field", &o->prompt_field));
  TREEPO_RETURN_IF_ERROR(c.Get("task.answer_field", &o->answer_field));
  TREEPO_RETURN_IF_ERROR(o->chat.Load(c, "task."));
  if (Status s = o->chat.Validate(); !s.ok()) return s.WithContext("task");
  TREEPO_RETURN_IF_ERROR(c.Get("task.train_problems", &o->train_problems));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.workers", &o->workers));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.learners", &o->learners));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.learner_command", &o->learner_command));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.worker_threads", &o->worker_threads));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.worker_sampler", &o->worker_sampler));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.worker_pages", &o->worker_pages));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.page_size", &o->page_size));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.learner_threads", &o->learner_threads));
  TREEPO_RETURN_IF_ERROR(c.Get("cluster.learner_exit_timeout_ms", &o->learner_exit_timeout_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.before", &o->eval_before));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.after", &o->eval_after));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.checkpoints", &o->eval_checkpoints));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.problems", &o->eval_problems));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.samples", &o->eval_samples));
  TREEPO_RETURN_IF_ERROR(c.Get("eval.max_new_tokens", &o->eval_max_new_tokens));
  TREEPO_RETURN_IF_ERROR(c.Get("output.checkpoint_every", &o->checkpoint_every));
  TREEPO_RETURN_IF_ERROR(c.Get("output.trees", &o->write_trees));
  TREEPO_RETURN_IF_ERROR(c.Get("output.report", &o->report));
  TREEPO_RETURN_IF_ERROR(c.Get("output.progress", &o->progress));
  if (o->out_dir.empty()) return InvalidArgument("out_dir is empty");
  if (o->workers < 1) return InvalidArgument("cluster.workers must be >= 1");
  if (o->learners < 1) return InvalidArgument("cluster.learners must be >= 1");
  if (o->train_problems < 1) return InvalidArgument("task.train_problems must be >= 1");
  if (o->learner_exit_timeout_ms < 1) {
    return InvalidArgument("cluster.learner_exit_timeout_ms must be >= 1");
  }
  return OkStatus();
}

// Every effective setting, key -> value, for the log at start and the dashboard.
std::map<std::string, std::string> EffectiveConfig(const TrainOptions& t,
                                                   const scheduler::RlOptions& r,
                                                   const learner::LearnerOptions& l) {
  std::map<std::string, std::string> kv = {
      {"out_dir", t.out_dir},
      {"resume", t.resume},
      {"model.base", t.base},
      {"model.make_if_missing", t.make_base ? "true" : "false"},
      {"model.pretrain_steps", std::to_string(t.pretrain_steps)},
      {"task.prompts", t.prompts},
      {"task.train_problems", std::to_string(t.train_problems)},
      {"task.chat", t.chat.enabled ? "true" : "false"},
      {"task.system_prompt", t.chat.system_prompt},
      {"task.instruction_suffix", t.chat.instruction_suffix},
      {"task.enable_thinking", t.chat.enable_thinking},
      {"cluster.workers", std::to_string(t.workers)},
      {"cluster.learners", std::to_string(t.learners)},
      {"cluster.learner_command", t.learner_command},
      {"cluster.worker_threads", std::to_string(t.worker_threads)},
      {"cluster.worker_sampler", t.worker_sampler},
      {"cluster.learner_threads", std::to_string(t.learner_threads)},
      {"eval.problems", std::to_string(t.eval_problems)},
      {"eval.samples", std::to_string(t.eval_samples)},
      {"eval.checkpoints", t.eval_checkpoints ? "true" : "false"},
      {"output.checkpoint_every", std::to_string(t.checkpoint_every)},
      {"steps", std::to_string(r.steps)},
      {"seed", std::to_string(r.rollout.seed)},
      {"rollout.mode", r.rollout.mode},
      {"rollout.width", std::to_string(r.rollout.width)},
      {"rollout.segment_tokens", std::to_string(r.rollout.segment_tokens)},
      {"rollout.max_depth", std::to_string(r.rollout.max_depth)},
      {"rollout.branch", std::to_string(r.rollout.branch)},
      {"rollout.temperature", std::to_string(r.rollout.temperature)},
      {"rollout.reward", r.rollout.reward},
      {"rollout.queries_per_step", std::to_string(r.queries_per_step)},
      {"rollout.dynamic_sampling", r.dynamic_sampling ? "true" : "false"},
      {"sync.mode", r.sync_mode},
      {"sync.max_staleness", std::to_string(r.max_staleness)}};
  for (const std::string& s : learner::LearnerOptionSets(l)) {
    const size_t eq = s.find('=');
    kv["learner." + s.substr(0, eq)] = s.substr(eq + 1);
  }
  kv["dashboard.enabled"] = r.rollout.dashboard.enabled ? "true" : "false";
  kv["dashboard.bind"] = r.rollout.dashboard.bind;
  return kv;
}

std::string ConfigLines(const std::map<std::string, std::string>& kv) {
  std::string out;
  for (const auto& [k, v] : kv) out += "  " + k + " = " + v + "\n";
  return out;
}

Status AppendLine(const std::string& path, const nlohmann::json& j) {
  return AppendLineToFile(path, j.dump());
}

// An eval line of metrics.jsonl: {"step": N, "eval": <EvalReportJson>}.
Status AppendEvalLine(const std::string& path, int64_t step, const EvalReport& r) {
  return AppendLine(path, {{"step", step}, {"eval", nlohmann::json::parse(EvalReportJson(r))}});
}

Result<EvalReport> Evaluate(const TrainOptions& t, const std::string& model_dir, uint64_t seed,
                            const std::string& out_json) {
  EvalOptions e;
  e.model_path = model_dir;
  e.samples = t.eval_samples;
  e.problems = t.eval_problems;
  e.prompts_path = t.prompts;
  if (!t.prompts.empty()) {
    e.prompt_field = t.prompt_field;
    e.answer_field = t.answer_field;
  }
  e.chat = t.chat;
  e.max_new_tokens = t.eval_max_new_tokens;
  e.seed = seed;
  e.out_json = out_json;
  e.progress = t.progress;
  return RunEval(e);
}

Result<std::vector<scheduler::PromptRecord>> TrainRecords(const TrainOptions& t, uint64_t seed) {
  if (!t.prompts.empty()) {
    scheduler::PromptFileOptions po;
    po.prompt_field = t.prompt_field;
    po.answer_field = t.answer_field;
    return scheduler::LoadPromptFile(t.prompts, po);
  }
  const std::string task_json = (fs::path(t.base) / "task.json").string();
  scheduler::ArithmeticOptions ao;
  if (fs::exists(task_json)) {
    TREEPO_ASSIGN_OR_RETURN(ao, ReadTaskOptions(task_json));
  }
  TREEPO_ASSIGN_OR_RETURN(scheduler::ArithmeticTask task, scheduler::ArithmeticTask::Create(ao));
  return scheduler::ArithmeticRecords(task, scheduler::Split::kTrain, t.train_problems, seed);
}

// `env VAR=... /bin/sh -c COMMAND` for an outside learner of rank `rank`: what it needs to
// serve this run (docs/external-learner.md).
std::vector<std::string> LearnerCommandArgv(const TrainOptions& t,
                                            const learner::LearnerOptions& lo,
                                            const std::string& endpoint, const std::string& model,
                                            int rank, const std::vector<std::string>& key_flags) {
  std::vector<std::string> argv = {
      "/usr/bin/env",
      "TREEPO_SCHEDULER=" + endpoint,
      "TREEPO_MODEL=" + model,
      "TREEPO_CHECKPOINT_DIR=" + lo.checkpoint_dir,
      "TREEPO_RANK=" + std::to_string(rank),
      "TREEPO_WORLD_SIZE=" + std::to_string(t.learners),
      "TREEPO_ESTIMATOR=" + lo.estimator,
      "TREEPO_LR=" + std::to_string(lo.trainer.adamw.lr),
      "TREEPO_WARMUP_STEPS=" + std::to_string(lo.trainer.adamw.warmup_steps),
      "TREEPO_THREADS=" + std::to_string(t.learner_threads)};
  for (size_t i = 0; i + 1 < key_flags.size(); i += 2) {
    if (key_flags[i] == "--scheduler-key")
      argv.push_back("TREEPO_SCHEDULER_KEY=" + key_flags[i + 1]);
    if (key_flags[i] == "--key") argv.push_back("TREEPO_KEY=" + key_flags[i + 1]);
  }
  for (const char* s : {"/bin/sh", "-c"}) argv.push_back(s);
  argv.push_back(t.learner_command);
  return argv;
}

// The learner processes' names (their logs are logs/NAME.log).
std::vector<std::string> LearnerNames(int learners) {
  if (learners == 1) return {"learner"};
  std::vector<std::string> out;
  for (int r = 0; r < learners; ++r) out.push_back("learner-" + std::to_string(r));
  return out;
}

struct TrainCmdOptions {
  std::string config_path;
  std::vector<std::string> sets;
};

Status RunTrainCmd(const TrainCmdOptions& c) {
  Config config;
  if (!c.config_path.empty()) {
    TREEPO_ASSIGN_OR_RETURN(config, Config::LoadTomlFile(c.config_path));
  }
  for (const std::string& s : c.sets) TREEPO_RETURN_IF_ERROR(config.Set(s));
  // Plug-ins first: the options below may name what they register.
  TREEPO_ASSIGN_OR_RETURN(const std::vector<std::string> plugins, LoadConfiguredPlugins(config));
  TrainOptions t;
  scheduler::RlOptions rl;
  rl.steps = 60;
  rl.rollout.max_concurrent_queries = 16;
  rl.rollout.width = 8;
  rl.rollout.segment_tokens = 16;
  rl.rollout.max_depth = 4;
  rl.rollout.branch = 2;
  rl.rollout.service.max_task_attempts = 100000;  // weight swaps refuse tasks briefly
  rl.rollout.dashboard.enabled = true;            // `rollout` leaves it off
  learner::LearnerOptions lo;
  lo.trainer.adamw.lr = 2e-5f;
  lo.trainer.adamw.warmup_steps = 2;
  TREEPO_RETURN_IF_ERROR(LoadTrainOptions(config, &t));
  TREEPO_RETURN_IF_ERROR(scheduler::LoadRlOptions(config, &rl));
  TREEPO_RETURN_IF_ERROR(learner::LoadLearnerOptions(config, "learner.", &lo));
  for (const char* derived : {"model", "resume", "checkpoint_dir", "checkpoint_every",
                              "checkpoint_on_signal", "blas_threads", "max_staleness", "rank",
                              "world_size", "collective_store", "collective_run_id"}) {
    if (config.Has(std::string("learner.") + derived)) {
      return InvalidArgument(std::string("learner.") + derived +
                             " is set by `treepo train` from other keys (configs/default.toml)");
    }
  }
  bool curve = false;  // scheduler.curve: ephemeral CURVE keys for the children
  TREEPO_RETURN_IF_ERROR(config.Get("scheduler.curve", &curve));
  TREEPO_RETURN_IF_ERROR(config.CheckAllConsumed());
  std::unique_ptr<LocalCurveKeys> keys;
  if (curve) {
    TREEPO_ASSIGN_OR_RETURN(keys, LocalCurveKeys::Create());
    keys->ApplyTo(&rl.rollout.service.security);
  }
  rl.workers = t.workers;
  rl.learners = t.learners;
  lo.world_size = t.learners;
  rl.progress = t.progress;
  if (rl.sync_mode == "async") lo.trainer.max_staleness = rl.max_staleness;
  lo.blas_threads = t.learner_threads;
  lo.checkpoint_every = t.checkpoint_every;
  // The learner's last checkpoint comes on the scheduler's Shutdown, never on a signal: a
  // killed `train` sends it SIGTERM before recording the step it trained.
  lo.checkpoint_on_signal = false;
  lo.checkpoint_dir = (fs::path(t.out_dir) / "checkpoints").string();
  rl.rollout.dashboard.url_file =
      (fs::path(t.out_dir) / scheduler::dashboard::kDashboardUrlFile).string();
  rl.dashboard_config = EffectiveConfig(t, rl, lo);
  spdlog::info("effective config:\n{}", ConfigLines(rl.dashboard_config));
  TREEPO_RETURN_IF_ERROR(EnsureWritableDir(t.out_dir, "out_dir"));

  // Base model.
  if (!fs::exists(fs::path(t.base) / "config.json")) {
    if (!t.make_base) return NotFound("no base model at " + t.base + " (model.make_if_missing)");
    TREEPO_RETURN_IF_ERROR(EnsureWritableDir(t.base, "model.base"));
    spdlog::info("no base model at {}: pretraining one", t.base);
    PretrainOptions p;
    p.out_dir = t.base;
    p.seed = rl.rollout.seed;
    if (t.pretrain_steps > 0) p.steps = t.pretrain_steps;
    TREEPO_RETURN_IF_ERROR(RunPretrain(p).status());
  }
  // The base's tokenizer (tokenizer.json or tokenizer.bin); eval finds it beside each checkpoint.
  TREEPO_ASSIGN_OR_RETURN(model::ModelConfig base_config,
                          model::LoadHfConfig((fs::path(t.base) / "config.json").string()));
  TREEPO_ASSIGN_OR_RETURN(std::shared_ptr<const model::TextTokenizer> tokenizer,
                          scheduler::LoadModelTokenizer("", t.base, base_config.vocab_size));
  TREEPO_ASSIGN_OR_RETURN(scheduler::PromptEncoder encoder,
                          scheduler::PromptEncoder::Create(tokenizer, t.chat, t.base));
  auto prompt_encoder = std::make_shared<const scheduler::PromptEncoder>(std::move(encoder));
  TREEPO_ASSIGN_OR_RETURN(std::vector<scheduler::PromptRecord> train,
                          TrainRecords(t, rl.rollout.seed));

  const std::string metrics = (fs::path(t.out_dir) / kMetricsFile).string();
  std::string start_model = t.base;
  if (!t.resume.empty()) {
    TREEPO_ASSIGN_OR_RETURN(learner::CheckpointState st, learner::ReadCheckpointState(t.resume));
    rl.start_step = st.step;
    lo.resume_dir = t.resume;
    start_model = t.resume;
    TREEPO_ASSIGN_OR_RETURN(const ReconciledMetrics m, ReconcileMetricsForResume(metrics, st.step));
    spdlog::info("resuming from {} at step {} ({} lines of {} kept, {} dropped)", t.resume, st.step,
                 m.kept_lines, metrics, m.dropped_lines);
  } else {
    fs::remove(metrics);
    lo.model_path = t.base;
  }
  rl.metrics_path = metrics;
  rl.max_seq_len = base_config.max_seq_len;
  if (t.write_trees) rl.trees_dir = (fs::path(t.out_dir) / "trees").string();

  nlohmann::json summary;
  if (t.eval_before && t.resume.empty()) {
    const std::string path = (fs::path(t.out_dir) / kBaseEvalFile).string();
    TREEPO_ASSIGN_OR_RETURN(EvalReport r, Evaluate(t, t.base, 1, path));
    TREEPO_RETURN_IF_ERROR(AppendEvalLine(metrics, 0, r));
    summary["accuracy_before"] = r.accuracy;
    spdlog::info("base model held-out accuracy {:.3f} ({} problems)", r.accuracy, r.problems);
  }

  const fs::path logs = fs::path(t.out_dir) / "logs";
  TREEPO_RETURN_IF_ERROR(EnsureWritableDir(logs.string(), "out_dir/logs"));
  // Every child is watched from the scheduler's loop: a worker that exits is reported and the
  // run goes on with the others; the learner exiting ends the run at once with its log's tail.
  Supervisor children;
  rl.rollout.liveness_probe = SupervisorProbe(&children);
  auto spawn = [&](const std::string& endpoint) -> Status {
    // Whole or absent, for tools that talk to a running train.
    TREEPO_RETURN_IF_ERROR(
        WriteFileAtomically((fs::path(t.out_dir) / "endpoint").string(), endpoint + "\n"));
    for (int i = 0; i < t.workers; ++i) {
      const std::string name = "worker-" + std::to_string(i + 1);
      std::vector<std::string> wargv = {SelfExecutable(), "worker",
                                        "--scheduler",    endpoint,
                                        "--model",        start_model,
                                        "--threads",      std::to_string(t.worker_threads),
                                        "--pages",        std::to_string(t.worker_pages),
                                        "--page-size",    std::to_string(t.page_size),
                                        "--name",         name};
      if (keys) {
        for (const std::string& f : keys->WorkerFlags()) wargv.push_back(f);
      }
      wargv.push_back("--sampler");
      wargv.push_back(t.worker_sampler);
      for (const std::string& p : plugins) {
        wargv.push_back("--plugin");
        wargv.push_back(p);
      }
      TREEPO_ASSIGN_OR_RETURN(ChildProcess w,
                              ChildProcess::Spawn(wargv, (logs / (name + ".log")).string()));
      children.Add(name, std::move(w), (logs / (name + ".log")).string(), false);
    }
    // Data-parallel ranks meet in a rendezvous directory of this run (removed at the end).
    if (t.learners > 1 && t.learner_command.empty()) {
      lo.collective_store = (logs / "rendezvous").string();
      lo.collective_run_id =
          "run-" + std::to_string(::getpid()) + "-" + std::to_string(SteadyNowMs());
    }
    for (int rank = 0; rank < t.learners; ++rank) {
      const std::string name = t.learners > 1 ? "learner-" + std::to_string(rank) : "learner";
      learner::LearnerOptions ro = lo;
      ro.rank = rank;
      if (t.learners > 1) ro.name = name;
      std::vector<std::string> argv = {SelfExecutable(), "learner", "--scheduler", endpoint};
      if (keys) {
        for (const std::string& f : keys->LearnerFlags()) argv.push_back(f);
      }
      for (const std::string& s : learner::LearnerOptionSets(ro)) {
        argv.push_back("--set");
        argv.push_back(s);
      }
      if (!plugins.empty()) {
        argv.push_back("--set");
        argv.push_back("plugins=" + JoinPluginList(plugins));
      }
      if (!t.learner_command.empty()) {
        argv = LearnerCommandArgv(t, lo, endpoint, start_model, rank,
                                  keys ? keys->LearnerFlags() : std::vector<std::string>());
      }
      const std::string log = (logs / (name + ".log")).string();
      TREEPO_ASSIGN_OR_RETURN(ChildProcess l, ChildProcess::Spawn(argv, log));
      children.Add(name, std::move(l), log, true);
    }
    return OkStatus();
  };
  Result<scheduler::RlSummary> out =
      scheduler::RunRl(rl, std::move(train), prompt_encoder, spawn, &g_train_stop);
  // The learner (rank 0) writes its final checkpoint on Shutdown before it exits.
  for (const std::string& name : LearnerNames(t.learners)) {
    children.WaitOrTerminate(name, out.ok() ? t.learner_exit_timeout_ms : 5000, 2000);
  }
  children.WaitOrTerminateAll(out.ok() ? 5000 : 0);  // a failed run stops its workers at once
  if (t.learners > 1) fs::remove_all(logs / "rendezvous");
  TREEPO_RETURN_IF_ERROR(out.status());
  for (const std::string& name : LearnerNames(t.learners)) {
    if (const ChildProcess* l = children.Find(name); l != nullptr && l->exit_code() != 0) {
      return Internal(children.Describe(name));
    }
  }

  // Every checkpoint of this run gets the base's tokenizer, chat template, generation config
  // and task knobs, so `treepo eval
  // --model CHECKPOINT` reads it as it is.
  std::map<int64_t, std::string> checkpoints;  // step -> dir, this run's only
  for (int64_t s = rl.start_step + 1; s <= rl.steps; ++s) {
    const std::string dir = learner::CheckpointDir(lo.checkpoint_dir, s);
    if (fs::exists(fs::path(dir) / "config.json")) checkpoints[s] = dir;
  }
  for (const auto& [s, dir] : checkpoints) {
    for (const char* f : {"tokenizer.bin", "tokenizer.json", "tokenizer_config.json",
                          "generation_config.json", "task.json"}) {
      const fs::path from = fs::path(t.base) / f;
      std::error_code ec;
      if (fs::exists(from)) {
        fs::copy_file(from, fs::path(dir) / f, fs::copy_options::overwrite_existing, ec);
      }
    }
  }
  const std::string final_dir = learner::CheckpointDir(lo.checkpoint_dir, rl.steps);
  // The held-out curve: each intermediate checkpoint, evaluated after the run so that RL's
  // timings are not disturbed.
  if (t.eval_checkpoints) {
    for (const auto& [s, dir] : checkpoints) {
      if (s == rl.steps) continue;
      const std::string path =
          (fs::path(t.out_dir) / ("eval_step_" + std::to_string(s) + ".json")).string();
      TREEPO_ASSIGN_OR_RETURN(EvalReport r, Evaluate(t, dir, 1, path));
      TREEPO_RETURN_IF_ERROR(AppendEvalLine(metrics, s, r));
      spdlog::info("checkpoint step {} held-out accuracy {:.3f}", s, r.accuracy);
    }
  }
  summary["steps"] = rl.steps;
  summary["steps_run"] = out->steps_done;
  summary["prompts_skipped"] = out->prompts_skipped;
  summary["final_version"] = out->final_version;
  summary["worker_versions"] = out->worker_versions;
  summary["wall_s"] = out->wall_s;
  summary["mean_step_s"] = out->mean_step_s;
  summary["first_step_accuracy"] = out->first_accuracy;
  summary["last_step_accuracy"] = out->last_accuracy;
  summary["checkpoint"] = final_dir;
  if (t.eval_after && fs::exists(final_dir)) {
    const std::string path = (fs::path(t.out_dir) / kFinalEvalFile).string();
    TREEPO_ASSIGN_OR_RETURN(EvalReport r, Evaluate(t, final_dir, 1, path));
    TREEPO_RETURN_IF_ERROR(AppendEvalLine(metrics, rl.steps, r));
    summary["accuracy_after"] = r.accuracy;
    spdlog::info("trained model held-out accuracy {:.3f}", r.accuracy);
  }
  TREEPO_RETURN_IF_ERROR(
      WriteFileAtomically((fs::path(t.out_dir) / "summary.json").string(), summary.dump(2) + "\n"));
  if (t.report) TREEPO_RETURN_IF_ERROR(WriteReport(t.out_dir));
  std::cout << summary.dump(2) << std::endl;
  return OkStatus();
}

}  // namespace

void RegisterTrain(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<TrainCmdOptions>();
  CLI::App* cmd = app.add_subcommand(
      "train", "TreePO RL end to end: base model, workers, learner, eval, report");
  cmd->add_option("--config", opts->config_path, "TOML config (configs/default.toml)");
  cmd->add_option("--set", opts->sets, "override a config key: key=value (repeatable)");
  cmd->callback([opts, exit_code] {
    InitLogging("train");
    std::signal(SIGINT, OnTrainSignal);
    std::signal(SIGTERM, OnTrainSignal);
    const Status st = RunTrainCmd(*opts);
    if (!st.ok()) {
      spdlog::error("train: {}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster
