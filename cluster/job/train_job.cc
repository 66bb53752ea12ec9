#include "cluster/job/train_job.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cluster/eval_job.h"
#include "cluster/plugins.h"
#include "cluster/pretrain_job.h"
#include "cluster/report.h"
#include "cluster/run_metrics.h"
#include "common/atomic_file.h"
#include "common/clock.h"
#include "common/file_io.h"
#include "common/line_appender.h"
#include "common/log.h"
#include "common/model/safetensors.h"
#include "learner/service/checkpoint.h"
#include "scheduler/rl/rl_loop.h"

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;

std::string ConfigLines(const std::map<std::string, std::string>& kv) {
  std::string out;
  for (const auto& [k, v] : kv) out += "  " + k + " = " + v + "\n";
  return out;
}

// An eval line of metrics.jsonl: {"step": N, "eval": <EvalReportJson>}.
Status AppendEvalLine(const std::string& path, int64_t step, const EvalReport& r) {
  const nlohmann::json j = {{"step", step}, {"eval", nlohmann::json::parse(EvalReportJson(r))}};
  return AppendLineToFile(path, j.dump());
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

// Adds `path` to the default logger's sinks (the log goes to stderr and there).
Status AddLogFile(const std::string& path) {
  try {
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
    std::shared_ptr<spdlog::logger> logger = spdlog::default_logger();
    sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n] [%l] %v");
    logger->sinks().push_back(std::move(sink));
    // Whole lines reach the file at once: `cluster status` and operators read it while the
    // run goes on.
    logger->flush_on(spdlog::level::info);
  } catch (const spdlog::spdlog_ex& e) {
    return Unavailable("cannot open the log file " + path + ": " + e.what());
  }
  return OkStatus();
}

// The dataset cursor after the last step line of `metrics` (its prompts_drawn), or -1.
int64_t PromptsDrawnAtEnd(const std::string& metrics) {
  std::ifstream in(metrics);
  int64_t drawn = -1;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && !j.contains("eval") && j.contains("prompts_drawn") &&
        j["prompts_drawn"].is_number_integer()) {
      drawn = j["prompts_drawn"].get<int64_t>();
    }
  }
  return drawn;
}

// `resume` may name a run directory (it holds checkpoints/): its newest complete checkpoint.
Result<std::string> ResolveResume(const std::string& resume) {
  const fs::path checkpoints = fs::path(resume) / "checkpoints";
  if (!fs::is_directory(checkpoints)) return resume;  // a checkpoint directory
  Result<std::string> newest = learner::NewestCompleteCheckpoint(checkpoints.string());
  if (!newest.ok()) {
    return NotFound("resume = " + resume + ": " + newest.status().message() +
                    " (the run stopped before its first checkpoint; start it again)");
  }
  return newest;
}

// The learners that died, started again from the newest complete checkpoint (the loop then
// sends them the steps since): every rank, since data-parallel ranks meet again as one new group
// (a fresh rendezvous) and the survivors of the old one cannot go on without their peer. Each is
// started the way the start stage started it (a child here, or through the cluster's launcher
// on its host); a learner this job did not start (another node's task) cannot be restarted.
Status RestartLearners(TrainJob* job, const std::string& why) {
  const TrainJobOptions& o = job->options;
  if (!job->start_process) {
    return FailedPrecondition("the learners are Pods, not started by this run: not restarted");
  }
  learner::LearnerOptions lo = o.learner;
  Result<std::string> ckpt = learner::NewestCompleteCheckpoint(lo.checkpoint_dir);
  std::error_code ec;
  if (ckpt.ok() &&
      fs::last_write_time(fs::path(*ckpt) / learner::kStateFile, ec) < job->rl_started) {
    ckpt = NotFound(*ckpt + " is older than this run");  // left by an earlier run in out_dir
  }
  if (ckpt.ok()) {
    lo.resume_dir = *ckpt;
  } else if (!o.train.resume.empty()) {
    lo.resume_dir = job->start_model;  // no checkpoint of this run yet: where it started
  }
  ++job->learner_restarts;
  if (o.train.learners > 1) {
    lo.collective_run_id += "-restart-" + std::to_string(job->learner_restarts);
  }
  std::vector<ProcessSpec> learners;
  for (ProcessSpec& p :
       PlanProcesses(o, lo, job->process_context, PlannedHosts(*job), job->logs_dir)) {
    if (p.role != "learner") continue;
    if (job->children.Find(p.name) == nullptr) {
      return FailedPrecondition(p.name + " runs on " + p.host +
                                ", started by that host's own task: not restarted");
    }
    learners.push_back(std::move(p));
  }
  spdlog::warn(
      "restarting {} ({}) from {} (restart {})",
      learners.size() == 1 ? "the learner" : std::to_string(learners.size()) + " learner ranks",
      why, lo.resume_dir.empty() ? lo.model_path : lo.resume_dir, job->learner_restarts);
  // Every old rank goes before a new one starts: a survivor stuck in a collective with the dead
  // one would otherwise hold its host's cores (and, remote, outlive its watcher).
  for (const ProcessSpec& p : learners) {
    if (ChildProcess* old = job->children.Find(p.name); old->Running()) old->Terminate(1000);
    if (job->stop_process) job->stop_process(p);
  }
  for (const ProcessSpec& p : learners) {
    Result<ChildProcess> l = job->start_process(p);
    if (!l.ok()) return l.status().WithContext("restarting " + p.name);
    job->children.Replace(p.name, std::move(*l));
  }
  return OkStatus();
}

}  // namespace

Result<Config> LoadRunConfig(const std::string& run_dir) {
  const std::string path = (fs::path(run_dir) / kRunConfigFile).string();
  TREEPO_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path, "the run's config"));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return DataLoss(path + " is not a JSON object of config keys");
  Config c;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) return DataLoss(path + ": the value of '" + key + "' is not a string");
    c.SetValue(key, value.get<std::string>());
  }
  c.SetValue("resume", run_dir);
  return c;
}

Status LoadTrainJob(const Config& config, TrainJob* job) {
  // Plug-ins first: the options below may name what they register.
  TREEPO_ASSIGN_OR_RETURN(job->plugins, LoadConfiguredPlugins(config));
  TREEPO_RETURN_IF_ERROR(LoadTrainJobOptions(config, &job->options));
  const TrainOptions& t = job->options.train;
  if (!t.key_dir.empty()) {
    Result<std::unique_ptr<LocalCurveKeys>> keys = LocalCurveKeys::FromDir(t.key_dir);
    if (!keys.ok()) return keys.status().WithContext("scheduler.key_dir");
    job->keys = std::move(*keys);
  } else if (t.curve) {
    TREEPO_ASSIGN_OR_RETURN(job->keys, LocalCurveKeys::Create());
  }
  if (job->keys) job->keys->ApplyTo(&job->options.rl.rollout.service.security);
  DeriveTrainJobOptions(&job->options);
  job->options.rl.dashboard_config = TrainSettings(job->options);
  return OkStatus();
}

Status ConfigureTrainJob(const Config& config, TrainJob* job) {
  TREEPO_RETURN_IF_ERROR(LoadTrainJob(config, job));
  const TrainOptions& t = job->options.train;
  TREEPO_RETURN_IF_ERROR(EnsureWritableDir(t.out_dir, "out_dir"));
  job->logs_dir = (fs::path(t.out_dir) / "logs").string();
  TREEPO_RETURN_IF_ERROR(EnsureWritableDir(job->logs_dir, "out_dir/logs"));
  TREEPO_RETURN_IF_ERROR(AddLogFile((fs::path(job->logs_dir) / "train.log").string()));
  spdlog::info("effective config:\n{}", ConfigLines(job->options.rl.dashboard_config));
  // The run's own keys (not a resume's), for `train --resume RUN_DIR`.
  if (job->options.train.resume.empty()) {
    nlohmann::json keys = nlohmann::json::object();
    for (const auto& [key, value] : config.values()) keys[key] = value;
    TREEPO_RETURN_IF_ERROR(WriteFileAtomically(
        (fs::path(job->options.train.out_dir) / kRunConfigFile).string(), keys.dump(2) + "\n"));
  }
  return OkStatus();
}

Status PrepareBaseModel(TrainJob* job) {
  const TrainOptions& t = job->options.train;
  if (!fs::exists(fs::path(t.base) / "config.json")) {
    if (!t.make_base) return NotFound("no base model at " + t.base + " (model.make_if_missing)");
    TREEPO_RETURN_IF_ERROR(EnsureWritableDir(t.base, "model.base"));
    spdlog::info("no base model at {}: pretraining one for the {} task", t.base, t.base_task);
    TREEPO_ASSIGN_OR_RETURN(PretrainOptions p, PretrainPreset(t.base_task));
    p.out_dir = t.base;
    p.seed = job->options.rl.rollout.seed;
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
  job->prompt_encoder = std::make_shared<const scheduler::PromptEncoder>(std::move(encoder));
  job->options.rl.max_seq_len = base_config.max_seq_len;
  return OkStatus();
}

void SetStartModel(TrainJob* job) {
  const TrainOptions& t = job->options.train;
  if (t.resume.empty()) {
    job->start_model = t.base;
    job->options.learner.model_path = t.base;
  } else {
    job->start_model = t.resume;
    job->options.learner.resume_dir = t.resume;
  }
}

Status PrepareRunData(TrainJob* job) {
  const TrainOptions& t = job->options.train;
  scheduler::RlOptions& rl = job->options.rl;
  TREEPO_ASSIGN_OR_RETURN(job->train_records, TrainRecords(t, rl.rollout.seed));
  job->metrics_path = (fs::path(t.out_dir) / kMetricsFile).string();
  SetStartModel(job);
  if (!t.resume.empty()) {
    TREEPO_ASSIGN_OR_RETURN(const std::string from, ResolveResume(t.resume));
    TREEPO_ASSIGN_OR_RETURN(learner::CheckpointState st, learner::ReadCheckpointState(from));
    rl.start_step = st.step;
    job->options.learner.resume_dir = from;
    job->start_model = from;
    TREEPO_ASSIGN_OR_RETURN(const ReconciledMetrics m,
                            ReconcileMetricsForResume(job->metrics_path, st.step));
    // The dataset cursor where the checkpoint (or, for older ones, the recorded steps) left it.
    rl.start_cursor = st.prompts_drawn >= 0 ? st.prompts_drawn
                      : st.step > 0         ? PromptsDrawnAtEnd(job->metrics_path)
                                            : 0;
    spdlog::info("resuming from {} at step {} ({} lines of {} kept, {} dropped; {} prompts drawn)",
                 from, st.step, m.kept_lines, job->metrics_path, m.dropped_lines, rl.start_cursor);
    // A run directory: bind the endpoint the stopped head had, so that workers waiting to
    // rejoin (treepo worker --rejoin-timeout-ms) find this one.
    const std::string endpoint_file = (fs::path(t.resume) / "endpoint").string();
    if (from != t.resume && fs::exists(endpoint_file)) {
      Result<std::string> ep = ReadFileToString(endpoint_file, "the run's endpoint");
      if (ep.ok() && ep->find("tcp://") == 0) {
        std::string e = *ep;
        e.erase(e.find_last_not_of(" \n\r") + 1);
        rl.rollout.service.bind_endpoint = e;
      }
    }
  } else {
    fs::remove(job->metrics_path);
  }
  rl.metrics_path = job->metrics_path;
  if (t.write_trees) rl.trees_dir = (fs::path(t.out_dir) / "trees").string();
  return OkStatus();
}

Status EvaluateBase(TrainJob* job) {
  const TrainOptions& t = job->options.train;
  if (!t.eval_before || !t.resume.empty()) return OkStatus();
  const std::string path = (fs::path(t.out_dir) / kBaseEvalFile).string();
  TREEPO_ASSIGN_OR_RETURN(EvalReport r, Evaluate(t, t.base, 1, path));
  TREEPO_RETURN_IF_ERROR(AppendEvalLine(job->metrics_path, 0, r));
  job->summary["accuracy_before"] = r.accuracy;
  spdlog::info("base model held-out accuracy {:.3f} ({} problems)", r.accuracy, r.problems);
  return OkStatus();
}

std::string AdvertisedEndpoint(const std::string& advertise, const std::string& bound) {
  if (advertise.empty()) return bound;
  if (advertise.size() < 2 || advertise.substr(advertise.size() - 2) != ":*") return advertise;
  const size_t colon = bound.rfind(':');
  if (colon == std::string::npos) return advertise;
  return advertise.substr(0, advertise.size() - 1) + bound.substr(colon + 1);
}

std::vector<ProcessSpec> PlanJobProcesses(TrainJob* job, const std::string& endpoint) {
  const TrainOptions& t = job->options.train;
  ProcessContext ctx;
  ctx.executable = job->executable.empty() ? SelfExecutable() : job->executable;
  ctx.endpoint = AdvertisedEndpoint(t.advertise, endpoint);
  ctx.start_model = job->start_model;
  if (job->keys) {
    ctx.worker_key_flags = job->keys->WorkerFlags();
    ctx.learner_key_flags = job->keys->LearnerFlags();
  }
  ctx.plugins = job->plugins;
  job->process_context = ctx;
  // Data-parallel ranks meet in a rendezvous directory of this run (removed at the end).
  learner::LearnerOptions& lo = job->options.learner;
  if (t.learners > 1) {
    lo.collective_store = (fs::path(job->logs_dir) / "rendezvous").string();
    lo.collective_run_id =
        "run-" + std::to_string(::getpid()) + "-" + std::to_string(SteadyNowMs());
  }
  return PlanProcesses(job->options, lo, ctx, PlannedHosts(*job), job->logs_dir);
}

std::vector<HostPlacement> PlannedHosts(const TrainJob& job) {
  if (!job.placement.empty()) return job.placement;
  HostPlacement local;
  local.workers = job.options.train.workers;
  local.learners = job.options.train.learners;
  return {local};
}

Status StartPlannedProcesses(TrainJob* job, const std::vector<ProcessSpec>& specs) {
  for (const ProcessSpec& p : specs) {
    TREEPO_ASSIGN_OR_RETURN(ChildProcess c, job->start_process(p));
    job->children.Add(p.name, std::move(c), job->watch_log(p), p.role == "learner");
  }
  // learner.on_failure = restart: a learner's exit is the RL loop's to handle (RunRlStage).
  if (job->options.rl.restart_learner) {
    const std::vector<std::string> names = LearnerNames(job->options.train.learners);
    for (size_t rank = 0; rank < names.size(); ++rank) {
      job->children.SetRestartable(names[rank], static_cast<uint32_t>(rank));
    }
  }
  return OkStatus();
}

Status StartLocalProcesses(TrainJob* job, const std::string& endpoint) {
  job->start_process = [](const ProcessSpec& p) { return ChildProcess::Spawn(p.argv, p.log_path); };
  job->watch_log = [](const ProcessSpec& p) { return p.log_path; };
  return StartPlannedProcesses(job, PlanJobProcesses(job, endpoint));
}

Status RunRlStage(TrainJob* job, const StartProcessesFn& start, const std::atomic<bool>* stop) {
  const TrainOptions& t = job->options.train;
  const fs::path logs = job->logs_dir;
  // Every child is watched from the scheduler's loop: a worker that exits is reported and the
  // run goes on with the others; the learner exiting ends the run at once with its log's tail.
  job->options.rl.rollout.liveness_probe = SupervisorProbe(&job->children);
  // (A little earlier, for file systems with coarse timestamps.)
  job->rl_started = fs::file_time_type::clock::now() - std::chrono::seconds(2);
  // learner.on_failure = restart: the built-in learners are restarted from their newest
  // complete checkpoint (the RL loop asks, RestartLearners does it), every data-parallel rank
  // together, wherever the launcher placed them. Outside learners (cluster.learner_command) are
  // not: losing one fails the run.
  if (job->options.rl.learner_on_failure == "restart" && t.learner_command.empty()) {
    job->options.rl.restart_learner = [job](const std::string& why) {
      return RestartLearners(job, why);
    };
  }
  auto on_bound = [&](const std::string& endpoint) -> Status {
    // Whole or absent, for tools that talk to a running train.
    TREEPO_RETURN_IF_ERROR(
        WriteFileAtomically((fs::path(t.out_dir) / "endpoint").string(), endpoint + "\n"));
    return start(job, endpoint);
  };
  Result<scheduler::RlSummary> out = scheduler::RunRl(
      job->options.rl, std::move(job->train_records), job->prompt_encoder, on_bound, stop);
  // The learner (rank 0) writes its final checkpoint on Shutdown before it exits.
  for (const std::string& name : LearnerNames(t.learners)) {
    job->children.WaitOrTerminate(name, out.ok() ? t.learner_exit_timeout_ms : 5000, 2000);
  }
  job->children.WaitOrTerminateAll(out.ok() ? 5000 : 0);  // a failed run stops its workers
  if (t.learners > 1) fs::remove_all(logs / "rendezvous");
  TREEPO_RETURN_IF_ERROR(out.status());
  for (const std::string& name : LearnerNames(t.learners)) {
    if (const ChildProcess* l = job->children.Find(name); l != nullptr && l->exit_code() != 0) {
      return Internal(job->children.Describe(name));
    }
  }
  job->rl_summary = *out;
  return OkStatus();
}

Status CollectCheckpoints(TrainJob* job) {
  const TrainOptions& t = job->options.train;
  const scheduler::RlOptions& rl = job->options.rl;
  for (int64_t s = rl.start_step + 1; s <= rl.steps; ++s) {
    const std::string dir = learner::CheckpointDir(job->options.learner.checkpoint_dir, s);
    if (fs::exists(fs::path(dir) / "config.json")) job->checkpoints[s] = dir;
  }
  for (const auto& [s, dir] : job->checkpoints) {
    for (const char* f : {"tokenizer.bin", "tokenizer.json", "tokenizer_config.json",
                          "generation_config.json", "task.json"}) {
      const fs::path from = fs::path(t.base) / f;
      std::error_code ec;
      if (fs::exists(from)) {
        fs::copy_file(from, fs::path(dir) / f, fs::copy_options::overwrite_existing, ec);
      }
    }
  }
  return OkStatus();
}

Status EvaluateCheckpoints(TrainJob* job) {
  const TrainOptions& t = job->options.train;
  // Evaluated after the run so that RL's timings are not disturbed.
  if (!t.eval_checkpoints) return OkStatus();
  for (const auto& [s, dir] : job->checkpoints) {
    if (s == job->options.rl.steps) continue;
    const std::string path =
        (fs::path(t.out_dir) / ("eval_step_" + std::to_string(s) + ".json")).string();
    TREEPO_ASSIGN_OR_RETURN(EvalReport r, Evaluate(t, dir, 1, path));
    TREEPO_RETURN_IF_ERROR(AppendEvalLine(job->metrics_path, s, r));
    spdlog::info("checkpoint step {} held-out accuracy {:.3f}", s, r.accuracy);
  }
  return OkStatus();
}

Status WriteTrainReport(TrainJob* job) {
  const TrainOptions& t = job->options.train;
  const scheduler::RlOptions& rl = job->options.rl;
  const scheduler::RlSummary& out = job->rl_summary;
  const std::string final_dir =
      learner::CheckpointDir(job->options.learner.checkpoint_dir, rl.steps);
  nlohmann::json& summary = job->summary;
  summary["steps"] = rl.steps;
  summary["steps_run"] = out.steps_done;
  summary["prompts_skipped"] = out.prompts_skipped;
  summary["final_version"] = out.final_version;
  summary["worker_versions"] = out.worker_versions;
  summary["wall_s"] = out.wall_s;
  summary["mean_step_s"] = out.mean_step_s;
  summary["first_step_accuracy"] = out.first_accuracy;
  summary["last_step_accuracy"] = out.last_accuracy;
  summary["checkpoint"] = final_dir;
  if (t.eval_after && fs::exists(final_dir)) {
    const std::string path = (fs::path(t.out_dir) / kFinalEvalFile).string();
    TREEPO_ASSIGN_OR_RETURN(EvalReport r, Evaluate(t, final_dir, 1, path));
    TREEPO_RETURN_IF_ERROR(AppendEvalLine(job->metrics_path, rl.steps, r));
    summary["accuracy_after"] = r.accuracy;
    spdlog::info("trained model held-out accuracy {:.3f}", r.accuracy);
  }
  TREEPO_RETURN_IF_ERROR(
      WriteFileAtomically((fs::path(t.out_dir) / "summary.json").string(), summary.dump(2) + "\n"));
  if (t.report) TREEPO_RETURN_IF_ERROR(WriteReport(t.out_dir));
  std::cout << summary.dump(2) << std::endl;
  return OkStatus();
}

Status RunTrainJob(const Config& config, TrainJob* job, const StartProcessesFn& start,
                   const std::atomic<bool>* stop) {
  TREEPO_RETURN_IF_ERROR(ConfigureTrainJob(config, job));
  TREEPO_RETURN_IF_ERROR(PrepareBaseModel(job));
  TREEPO_RETURN_IF_ERROR(PrepareRunData(job));
  TREEPO_RETURN_IF_ERROR(EvaluateBase(job));
  TREEPO_RETURN_IF_ERROR(RunRlStage(job, start, stop));
  TREEPO_RETURN_IF_ERROR(CollectCheckpoints(job));
  TREEPO_RETURN_IF_ERROR(EvaluateCheckpoints(job));
  return WriteTrainReport(job);
}

Status RunTrainJob(const Config& config, const std::atomic<bool>* stop) {
  TrainJob job;
  return RunTrainJob(config, &job, &StartLocalProcesses, stop);
}

}  // namespace treepo::cluster
