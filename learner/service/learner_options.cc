#include <spdlog/fmt/fmt.h>

#include <string>
#include <vector>

#include "learner/service/learner_service.h"

namespace treepo::learner {
namespace {

// Calls f(key, field) for every config key of LearnerOptions.
template <typename O, typename F>
void ForEachKey(O& o, F&& f) {
  f("name", &o.name);
  f("model", &o.model_path);
  f("resume", &o.resume_dir);
  f("checkpoint_dir", &o.checkpoint_dir);
  f("checkpoint_every", &o.checkpoint_every);
  f("checkpoint_on_signal", &o.checkpoint_on_signal);
  f("estimator", &o.estimator);
  f("algorithm", &o.algorithm);
  f("algorithm_options", &o.algorithm_options);
  f("weight_chunk_bytes", &o.weight_chunk_bytes);
  f("blas_threads", &o.blas_threads);
  f("rank", &o.rank);
  f("world_size", &o.world_size);
  f("register_timeout_ms", &o.register_timeout_ms);
  f("scheduler_timeout_ms", &o.scheduler_timeout_ms);
  f("collective_backend", &o.collective_backend);
  f("collective_store", &o.collective_store);
  f("collective_run_id", &o.collective_run_id);
  f("collective_host", &o.collective_host);
  f("collective_timeout_ms", &o.collective_timeout_ms);
  f("check_weights", &o.check_weights);
  auto& t = o.trainer;
  f("lr", &t.adamw.lr);
  f("warmup_steps", &t.adamw.warmup_steps);
  f("weight_decay", &t.adamw.weight_decay);
  f("beta1", &t.adamw.beta1);
  f("beta2", &t.adamw.beta2);
  f("adam_eps", &t.adamw.eps);
  f("max_grad_norm", &t.adamw.max_grad_norm);
  f("eps_low", &t.loss.eps_low);
  f("eps_high", &t.loss.eps_high);
  f("dual_clip", &t.loss.dual_clip);
  f("kl_coef", &t.loss.kl_coef);
  f("entropy_coef", &t.loss.entropy_coef);
  f("mini_batch_queries", &t.mini_batch_queries);
  f("epochs", &t.epochs);
  f("micro_batch_tokens", &t.micro_batch_tokens);
  f("max_staleness", &t.max_staleness);
  f("tree_packing", &t.tree_packing);
  f("backend", &t.backend);
  f("device", &t.device);
}

}  // namespace

Status LearnerOptions::Validate() const {
  if (model_path.empty() && resume_dir.empty()) {
    return InvalidArgument("learner: set model (or resume)");
  }
  if (algorithm.empty()) return InvalidArgument("learner: algorithm is empty");
  if (checkpoint_every < 0) return InvalidArgument("checkpoint_every must be >= 0");
  if (weight_chunk_bytes < 1 || weight_chunk_bytes > (int64_t{32} << 20)) {
    return InvalidArgument("weight_chunk_bytes must be in [1, 32 MiB]");
  }
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return InvalidArgument("learner: need 0 <= rank < world_size");
  }
  if (register_timeout_ms < 1) return InvalidArgument("register_timeout_ms must be >= 1");
  if (scheduler_timeout_ms < 0) return InvalidArgument("scheduler_timeout_ms must be >= 0");
  if (world_size > 1 && collective_store.empty()) {
    return InvalidArgument("learner: world_size " + std::to_string(world_size) +
                           " needs collective_store (a directory every rank can reach)");
  }
  if (world_size > 1 && trainer.mini_batch_queries > 0) {
    return InvalidArgument(
        "learner: mini_batch_queries > 0 needs world_size 1 (data-parallel learners take one "
        "optimiser step per batch and epoch)");
  }
  if (collective_timeout_ms < 1) return InvalidArgument("collective_timeout_ms must be >= 1");
  return trainer.Validate();
}

Status LoadLearnerOptions(const Config& config, const std::string& prefix, LearnerOptions* o) {
  Status st;
  ForEachKey(*o, [&](const char* key, auto* field) {
    if (st.ok()) st = config.Get(prefix + key, field);
  });
  return st;
}

std::vector<std::string> LearnerOptionSets(const LearnerOptions& o) {
  std::vector<std::string> out;
  ForEachKey(o, [&](const char* key, const auto* field) {
    out.push_back(fmt::format("{}={}", key, *field));
  });
  return out;
}

}  // namespace treepo::learner
