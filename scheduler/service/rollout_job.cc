#include "scheduler/service/rollout_job.h"

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/atomic_file.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/model/safetensors.h"
#include "common/progress.h"
#include "common/tree/tree_record.h"
#include "protocols/model_fingerprint.h"
#include "scheduler/dataset/prompt_admission.h"
#include "scheduler/dataset/prompt_dataset.h"
#include "scheduler/service/tree_driver.h"

namespace treepo::scheduler {

Status RolloutJobOptions::Validate() const {
  if (tokenizer_path.empty() && model_path.empty()) {
    return InvalidArgument("rollout: set tokenizer (or model, to use the tokenizer beside it)");
  }
  TREEPO_RETURN_IF_ERROR(chat.Validate());
  if (prompts_path.empty()) return InvalidArgument("rollout: prompts is not set");
  if (dashboard.enabled) TREEPO_RETURN_IF_ERROR(dashboard.Validate());
  if (vocab_size <= 0 && model_path.empty()) {
    return InvalidArgument("rollout: set model (or vocab_size) so the tokenizer can be read");
  }
  if (max_queries < 0) return InvalidArgument("max_queries must be >= 0");
  if (min_workers < 1) return InvalidArgument("min_workers must be >= 1");
  if (wait_workers_timeout_ms < 1) return InvalidArgument("wait_workers_timeout_ms must be >= 1");
  if (max_concurrent_queries < 1) return InvalidArgument("max_concurrent_queries must be >= 1");
  TREEPO_RETURN_IF_ERROR(TreeDriverOptionsFrom(*this).status());
  return service.Validate();
}

Status LoadRolloutJobOptions(const Config& c, RolloutJobOptions* o) {
  TREEPO_RETURN_IF_ERROR(c.Get("tokenizer", &o->tokenizer_path));
  TREEPO_RETURN_IF_ERROR(c.Get("vocab_size", &o->vocab_size));
  TREEPO_RETURN_IF_ERROR(c.Get("model", &o->model_path));
  TREEPO_RETURN_IF_ERROR(c.Get("prompts", &o->prompts_path));
  TREEPO_RETURN_IF_ERROR(c.Get("prompt_field", &o->prompt_field));
  TREEPO_RETURN_IF_ERROR(c.Get("answer_field", &o->answer_field));
  TREEPO_RETURN_IF_ERROR(o->chat.Load(c, ""));
  TREEPO_RETURN_IF_ERROR(c.Get("max_queries", &o->max_queries));
  TREEPO_RETURN_IF_ERROR(c.Get("mode", &o->mode));
  TREEPO_RETURN_IF_ERROR(c.Get("width", &o->width));
  TREEPO_RETURN_IF_ERROR(c.Get("segment_tokens", &o->segment_tokens));
  TREEPO_RETURN_IF_ERROR(c.Get("max_depth", &o->max_depth));
  TREEPO_RETURN_IF_ERROR(c.Get("branch", &o->branch));
  TREEPO_RETURN_IF_ERROR(c.Get("init_divergence", &o->init_divergence));
  TREEPO_RETURN_IF_ERROR(c.Get("max_init_divergence", &o->max_init_divergence));
  TREEPO_RETURN_IF_ERROR(c.Get("temperature", &o->temperature));
  TREEPO_RETURN_IF_ERROR(c.Get("top_p", &o->top_p));
  TREEPO_RETURN_IF_ERROR(c.Get("top_k", &o->top_k));
  TREEPO_RETURN_IF_ERROR(c.Get("seed", &o->seed));
  TREEPO_RETURN_IF_ERROR(c.Get("reward", &o->reward));
  TREEPO_RETURN_IF_ERROR(c.Get("branching", &o->branching));
  TREEPO_RETURN_IF_ERROR(c.Get("extra_stop_rules", &o->extra_stop_rules));
  TREEPO_RETURN_IF_ERROR(c.Get("max_concurrent_queries", &o->max_concurrent_queries));
  TREEPO_RETURN_IF_ERROR(c.Get("min_workers", &o->min_workers));
  TREEPO_RETURN_IF_ERROR(c.Get("wait_workers_timeout_ms", &o->wait_workers_timeout_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("out", &o->out_path));
  TREEPO_RETURN_IF_ERROR(c.Get("summary_out", &o->summary_path));
  TREEPO_RETURN_IF_ERROR(c.Get("progress", &o->progress));
  SchedulerOptions& s = o->service;
  TREEPO_RETURN_IF_ERROR(c.Get("bind", &s.bind_endpoint));
  TREEPO_RETURN_IF_ERROR(LoadSchedulerSecurityOptions(c, &s.security));
  TREEPO_RETURN_IF_ERROR(c.Get("heartbeat_interval_ms", &s.heartbeat_interval_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("heartbeat_timeout_ms", &s.heartbeat_timeout_ms));
  TREEPO_RETURN_IF_ERROR(c.Get("max_task_attempts", &s.max_task_attempts));
  TREEPO_RETURN_IF_ERROR(LoadPlacementKeys(c, "", &s.dispatch));
  TREEPO_RETURN_IF_ERROR(LoadDeadlineKeys(c, "", &s.dispatch));
  TREEPO_RETURN_IF_ERROR(dashboard::LoadDashboardOptions(c, &o->dashboard));
  TREEPO_RETURN_IF_ERROR(c.CheckAllConsumed());
  return o->Validate();
}

std::string RolloutSummaryJson(const RolloutOutput& output, const RolloutJobOptions& o) {
  const RolloutStats& s = output.stats;
  nlohmann::json j;
  const double wall = s.wall_s > 0 ? s.wall_s : 1e-9;
  j["queries"] = s.queries;
  j["leaves"] = s.leaves;
  j["wall_s"] = s.wall_s;
  j["trajectories_per_s"] = static_cast<double>(s.leaves) / wall;
  j["tokens_per_s"] = static_cast<double>(s.tokens_decoded) / wall;
  j["tokens_decoded"] = s.tokens_decoded;
  j["tokens_prefilled"] = s.tokens_prefilled;
  j["unique_tree_tokens"] = s.unique_tree_tokens;
  j["tokens_unique"] = s.tokens_unique;
  j["computed_over_unique"] =
      ComputedOverUnique(s.tokens_prefilled, s.tokens_decoded, s.tokens_unique);
  j["tokens_recomputed"] = s.tokens_recomputed;
  j["kv_migrations"] = s.kv_migrations;
  j["kv_bytes_migrated"] = s.kv_bytes_migrated;
  j["kv_migrations_failed"] = s.kv_migrations_failed;
  j["kv_evictions"] = s.kv_evictions;
  j["tasks_waited"] = s.tasks_waited;
  j["placement_decisions"] = {
      {"wait", s.decided_wait}, {"recompute", s.decided_recompute}, {"migrate", s.decided_migrate}};
  j["segments"] = s.segments;
  j["tasks"] = s.tasks;
  j["redispatched_tasks"] = s.redispatched_tasks;
  j["prompts_skipped"] = s.prompts_skipped;
  double reward_sum = 0;
  int64_t n = 0;
  for (const TreeRecord& t : output.trees) {
    for (const TreeLeafRecord& l : t.leaves) {
      reward_sum += l.reward;
      ++n;
    }
  }
  j["mean_reward"] = n > 0 ? reward_sum / static_cast<double>(n) : 0.0;
  nlohmann::json util = nlohmann::json::object();
  nlohmann::json workers = nlohmann::json::array();
  for (const WorkerUsage& w : s.workers) {
    const std::string key = w.name + "#" + std::to_string(w.worker.value());
    util[key] = w.busy_fraction;
    workers.push_back({{"id", w.worker.value()},
                       {"name", w.name},
                       {"segments", w.segments},
                       {"busy_fraction", w.busy_fraction},
                       {"peak_pages", w.peak_pages}});
  }
  j["worker_utilisation"] = util;
  j["workers"] = workers;
  j["options"] = {{"mode", o.mode},
                  {"width", o.width},
                  {"segment_tokens", o.segment_tokens},
                  {"max_depth", o.max_depth},
                  {"branch", o.branch},
                  {"init_divergence", o.init_divergence},
                  {"temperature", o.temperature},
                  {"top_p", o.top_p},
                  {"seed", o.seed},
                  {"reward", o.reward},
                  {"branching", o.branching},
                  {"extra_stop_rules", o.extra_stop_rules}};
  // A worker names itself: its name may not be valid UTF-8. Replace such bytes, never throw.
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// The model's vocabulary and context (max_seq_len 0, unknown, when only vocab_size is set),
// and the fingerprint workers must send when the model is known.
Result<model::ModelConfig> ModelShape(const RolloutJobOptions& o, uint64_t* fingerprint) {
  model::ModelConfig c;
  if (!o.model_path.empty()) {
    // config.json alone: the scheduler never holds the weights.
    TREEPO_ASSIGN_OR_RETURN(c, model::LoadModelConfig(o.model_path));
    *fingerprint = protocols::ModelFingerprint(c);
  }
  if (o.vocab_size > 0) c.vocab_size = o.vocab_size;
  return c;
}

// Streams finished trees to the tree file in query order: a tree that finishes before an
// earlier query's waits here, so a complete run's file does not depend on timing.
class TreeStream {
 public:
  explicit TreeStream(std::optional<TreeFileWriter> writer) : writer_(std::move(writer)) {}

  Status Add(size_t query, const TreeRecord& tree) {
    if (!writer_) return OkStatus();
    pending_.emplace(query, tree);
    while (!pending_.empty() && pending_.begin()->first == next_) {
      TREEPO_RETURN_IF_ERROR(writer_->Append(pending_.begin()->second));
      pending_.erase(pending_.begin());
      ++next_;
    }
    return OkStatus();
  }

  // Writes the trees still waiting for an earlier query (a stopped run keeps every finished
  // tree) and commits the file. Without any tree the file is not created.
  Result<int64_t> Finish() {
    if (!writer_) return int64_t{0};
    for (const auto& [q, tree] : pending_) TREEPO_RETURN_IF_ERROR(writer_->Append(tree));
    pending_.clear();
    const int64_t n = writer_->trees();
    if (n > 0) TREEPO_RETURN_IF_ERROR(writer_->Commit());
    writer_.reset();
    return n;
  }

 private:
  std::optional<TreeFileWriter> writer_;
  std::map<size_t, TreeRecord> pending_;
  size_t next_ = 0;
};

// Every output is checked before the work: a rollout never ends with "cannot open".
Result<std::optional<TreeFileWriter>> OpenOutputs(const RolloutJobOptions& o) {
  if (!o.summary_path.empty()) {
    TREEPO_RETURN_IF_ERROR(CheckWritableFile(o.summary_path, "summary file (summary_out)"));
  }
  if (o.out_path.empty()) return std::optional<TreeFileWriter>();
  TREEPO_RETURN_IF_ERROR(CheckWritableFile(o.out_path, "tree file (out)"));
  TREEPO_ASSIGN_OR_RETURN(TreeFileWriter w, TreeFileWriter::Open(o.out_path));
  return std::optional<TreeFileWriter>(std::move(w));
}

}  // namespace

Result<RolloutOutput> RunRolloutJob(const RolloutJobOptions& o,
                                    const std::function<Status(const std::string&)>& on_bound,
                                    const std::atomic<bool>* stop) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
  TREEPO_ASSIGN_OR_RETURN(std::optional<TreeFileWriter> writer, OpenOutputs(o));
  PromptFileOptions po;
  po.prompt_field = o.prompt_field;
  po.answer_field = o.answer_field;
  TREEPO_ASSIGN_OR_RETURN(std::vector<PromptRecord> prompts, LoadPromptFile(o.prompts_path, po));
  if (o.max_queries > 0 && static_cast<int64_t>(prompts.size()) > o.max_queries) {
    prompts.resize(static_cast<size_t>(o.max_queries));
  }
  if (prompts.empty()) return InvalidArgument(o.prompts_path + " holds no prompts");
  SchedulerOptions service_options = o.service;
  TREEPO_ASSIGN_OR_RETURN(const model::ModelConfig shape,
                          ModelShape(o, &service_options.expected_model_fingerprint));
  TREEPO_ASSIGN_OR_RETURN(std::shared_ptr<const model::TextTokenizer> tokenizer,
                          LoadModelTokenizer(o.tokenizer_path, o.model_path, shape.vocab_size));
  TREEPO_ASSIGN_OR_RETURN(
      const PromptEncoder encoder,
      PromptEncoder::Create(tokenizer, o.chat,
                            o.tokenizer_path.empty() ? o.model_path : o.tokenizer_path));
  // Every prompt is tokenized here, before the service loop starts.
  TREEPO_ASSIGN_OR_RETURN(
      const int64_t max_prompt_tokens,
      MaxPromptTokens(shape.max_seq_len, static_cast<int64_t>(o.max_depth) * o.segment_tokens));
  if (shape.max_seq_len <= 0) {
    spdlog::info("no model given: prompt lengths are not checked against its context");
  }
  const size_t loaded = prompts.size();
  TREEPO_ASSIGN_OR_RETURN(AdmittedPrompts admitted,
                          AdmitPrompts(std::move(prompts), encoder, max_prompt_tokens));
  if (admitted.records.empty()) {
    return InvalidArgument("all " + std::to_string(loaded) + " prompts of " + o.prompts_path +
                           " are longer than the " + std::to_string(max_prompt_tokens) +
                           " tokens that leave room for the response in the model's context");
  }
  auto records = std::make_shared<const std::vector<PromptRecord>>(std::move(admitted.records));
  TREEPO_ASSIGN_OR_RETURN(TreeDriverSetup setup, MakeTreeDriverSetup(o, records, tokenizer));

  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<SchedulerService> service,
                          SchedulerService::Create(service_options));
  service->set_liveness_probe(o.liveness_probe);
  std::unique_ptr<dashboard::Dashboard> dash;
  if (o.dashboard.enabled) {
    TREEPO_ASSIGN_OR_RETURN(dash, dashboard::Dashboard::Start(
                                      o.dashboard,
                                      [tokenizer](const std::vector<int32_t>& t) {
                                        return tokenizer->Decode(t, false);
                                      },
                                      "rollout"));
    service->set_loop_observer(&dash->recorder());
  }
  if (on_bound) TREEPO_RETURN_IF_ERROR(on_bound(service->endpoint()));
  TREEPO_RETURN_IF_ERROR(service->WaitForWorkers(o.min_workers, o.wait_workers_timeout_ms, stop));
  spdlog::info("rolling out {} queries ({} mode, w={} L={} d={} b={}) on {} workers",
               records->size(), o.mode, o.width, o.segment_tokens, o.max_depth, o.branch,
               service->registry().live_count());

  ProgressBar bar("queries", static_cast<int64_t>(records->size()), o.progress);
  RolloutRunOptions ro;
  ro.max_concurrent_queries = o.max_concurrent_queries;
  ro.scorer = setup.scorer;
  ro.wait_workers_timeout_ms = o.wait_workers_timeout_ms;
  ro.observer = dash ? &dash->recorder() : nullptr;
  ro.on_progress = [&](int64_t done, int64_t) {
    bar.Update(done, std::to_string(service->registry().live_count()) + " workers");
  };
  TreeStream trees(std::move(writer));
  ro.on_tree = [&trees](size_t q, const TreeRecord& tree) { return trees.Add(q, tree); };
  Result<RolloutOutput> out = RunRollout(service.get(), records->size(), setup.factory, ro, stop);
  if (out.ok()) out->stats.prompts_skipped = static_cast<int64_t>(admitted.skipped.size());
  bar.Finish(out.ok() ? "done" : "failed");
  service->set_liveness_probe(nullptr);  // workers exit on Shutdown now
  service->set_loop_observer(nullptr);
  service->ShutdownWorkers(out.ok() ? "rollout complete" : "rollout failed").IgnoreError();
  // Give the Shutdown frames a moment on the wire before the Router closes (linger 0).
  for (int i = 0; i < 5; ++i) service->Pump(20).IgnoreError();
  TREEPO_ASSIGN_OR_RETURN(const int64_t written, trees.Finish());
  if (!out.ok()) {
    if (written == 0) return out.status();
    return out.status().WithContext("rollout ended early; its " + std::to_string(written) +
                                    " finished trees (of " + std::to_string(records->size()) +
                                    ") are in " + o.out_path);
  }
  if (!o.summary_path.empty()) {
    TREEPO_RETURN_IF_ERROR(WriteFileAtomically(o.summary_path, RolloutSummaryJson(*out, o) + "\n"));
  }
  return out;
}

}  // namespace treepo::scheduler
