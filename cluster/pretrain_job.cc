#include "cluster/pretrain_job.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cluster/eval_job.h"
#include "common/atomic_file.h"
#include "common/file_io.h"
#include "common/json_file.h"
#include "common/json_number.h"
#include "common/log.h"
#include "common/model/safetensors.h"
#include "learner/pretrain/pretrain.h"
#include "scheduler/task/task_tokenizer.h"

namespace treepo::cluster {

namespace fs = std::filesystem;

Status PretrainOptions::Validate() const {
  if (out_dir.empty()) return InvalidArgument("pretrain: --out is required");
  if (corpus_problems < 1) return InvalidArgument("pretrain: corpus_problems must be >= 1");
  if (!(direct_answer_share >= 0.0 && direct_answer_share <= 1.0)) {
    return InvalidArgument("pretrain: direct_answer_share must be in [0, 1]");
  }
  if (!(direct_answer_error >= 0.0 && direct_answer_error <= 1.0)) {
    return InvalidArgument("pretrain: direct_answer_error must be in [0, 1]");
  }
  if (!(slip_share >= 0.0 && slip_share <= 1.0)) {
    return InvalidArgument("pretrain: slip_share must be in [0, 1]");
  }
  if (slip_max_delta < 1) return InvalidArgument("pretrain: slip_max_delta must be >= 1");
  if (slip_from < 1) return InvalidArgument("pretrain: slip_from must be >= 1");
  if (slip_share > 0.0 && task.task != scheduler::kReasoningTaskName) {
    return InvalidArgument("pretrain: slip_share is for the reasoning task (--task reasoning)");
  }
  if (eval_problems < 0) return InvalidArgument("pretrain: eval_problems must be >= 0");
  if (eval_max_new_tokens < 1) return InvalidArgument("pretrain: eval_max_new_tokens must be >= 1");
  if (log_every < 0) return InvalidArgument("pretrain: log_every must be >= 0");
  if (task.held_out_percent >= 100) {
    return InvalidArgument("pretrain: held_out_percent must be < 100 to leave a train split");
  }
  return task.Validate();
}

Result<PretrainOptions> PretrainPreset(std::string_view task_name) {
  PretrainOptions o;
  if (task_name == scheduler::kArithmeticTaskName) return o;
  if (task_name != scheduler::kReasoningTaskName) {
    return InvalidArgument("pretrain: unknown task \"" + std::string(task_name) +
                           "\" (--task: arithmetic or reasoning)");
  }
  o.task = scheduler::ReasoningTaskOptions();
  o.direct_answer_share = 0.0;
  o.slip_share = 0.5;
  o.slip_from = 3;  // the first three steps never slip: the samples of a prompt share them
  o.max_seq_len = 160;
  o.steps = 800;
  o.batch_size = 24;
  o.eval_max_new_tokens = 128;
  return o;
}

std::string TaskOptionsJson(const scheduler::ArithmeticOptions& t) {
  nlohmann::json j;
  j["task"] = t.task;
  if (t.task == scheduler::kReasoningTaskName) {
    j["min_steps"] = t.min_steps;
    j["max_steps"] = t.max_steps;
    j["held_out_percent"] = t.held_out_percent;
    return j.dump(2);
  }
  j["min_terms"] = t.min_terms;
  j["max_terms"] = t.max_terms;
  j["min_digits"] = t.min_digits;
  j["max_digits"] = t.max_digits;
  j["subtract_prob"] = t.subtract_prob;
  j["multiply_prob"] = t.multiply_prob;
  j["held_out_percent"] = t.held_out_percent;
  return j.dump(2);
}

Result<scheduler::ArithmeticOptions> ReadTaskOptions(const std::string& path) {
  TREEPO_ASSIGN_OR_RETURN(const nlohmann::json j, ReadJsonObjectFile(path));
  scheduler::ArithmeticOptions t;
  if (j.contains("task")) {
    if (!j["task"].is_string()) return DataLoss(path + ": \"task\" must be a string");
    t.task = j["task"].get<std::string>();
  }
  // Integers are range-checked: get<int> would read 1e12 as -727379968.
  for (auto [key, field] : {std::pair{"min_terms", &t.min_terms},
                            {"max_terms", &t.max_terms},
                            {"min_digits", &t.min_digits},
                            {"max_digits", &t.max_digits},
                            {"min_steps", &t.min_steps},
                            {"max_steps", &t.max_steps},
                            {"held_out_percent", &t.held_out_percent}}) {
    if (!j.contains(key)) continue;
    Result<int> v = JsonToInt<int>(j[key], key);
    if (!v.ok()) return DataLoss(path + ": " + v.status().message());
    *field = *v;
  }
  try {
    t.subtract_prob = j.value("subtract_prob", t.subtract_prob);
    t.multiply_prob = j.value("multiply_prob", t.multiply_prob);
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(path + ": " + e.what());
  }
  if (Status s = t.Validate(); !s.ok()) return InvalidArgument(path + ": " + s.message());
  return t;
}

namespace {

Status WriteText(const std::string& path, const std::string& text) {
  return WriteFileAtomically(path, text + "\n");
}

}  // namespace

Result<PretrainOutput> RunPretrain(const PretrainOptions& o) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
  TREEPO_RETURN_IF_ERROR(EnsureWritableDir(o.out_dir, "pretrain: --out"));

  TREEPO_ASSIGN_OR_RETURN(scheduler::ArithmeticTask task,
                          scheduler::ArithmeticTask::Create(o.task));
  TREEPO_ASSIGN_OR_RETURN(model::Tokenizer tok, scheduler::BuildTaskTokenizer());

  model::ModelConfig mc;
  mc.dim = o.dim;
  mc.hidden_dim = o.hidden_dim;
  mc.n_layers = o.n_layers;
  mc.n_heads = o.n_heads;
  mc.n_kv_heads = o.n_kv_heads;
  mc.vocab_size = tok.vocab_size();
  mc.max_seq_len = o.max_seq_len;
  mc.rope_layout = model::RopeLayout::kAdjacentPairs;
  mc.tied_embeddings = true;
  mc.bos_id = tok.bos_id();
  mc.eos_id = tok.eos_id();
  TREEPO_RETURN_IF_ERROR(mc.Validate());
  TREEPO_ASSIGN_OR_RETURN(model::ModelWeights weights, model::ModelWeights::Random(mc, o.seed));

  // Corpus: BOS + prompt, then the solution as its continuation, then EOS.
  const std::vector<scheduler::ArithmeticProblem> problems =
      task.MakeSet(scheduler::Split::kTrain, o.corpus_problems, o.seed);
  std::vector<learner::PretrainSequence> corpus;
  corpus.reserve(problems.size());
  std::mt19937_64 style_rng(o.seed ^ 0x5eedd17ec7ull);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int slipped = 0;
  const bool reasoning = o.task.task == scheduler::kReasoningTaskName;
  for (const scheduler::ArithmeticProblem& p : problems) {
    learner::PretrainSequence s;
    s.tokens = tok.Encode(p.prompt, /*add_bos=*/true);
    s.loss_start = o.loss_on_prompt ? 1 : static_cast<int>(s.tokens.size());
    const bool direct = unit(style_rng) < o.direct_answer_share;
    std::string answer = p.answer;
    if (direct && unit(style_rng) < o.direct_answer_error) {
      const int64_t right = std::stoll(p.answer);
      int64_t off = std::uniform_int_distribution<int64_t>(1, 9)(style_rng);
      if (unit(style_rng) < 0.5 && right - off >= 0) off = -off;
      answer = std::to_string(right + off);
    }
    std::string solution = direct ? " \\boxed{" + answer + "}" : p.solution;
    if (!direct && reasoning && o.slip_share > 0.0 && unit(style_rng) < o.slip_share) {
      TREEPO_ASSIGN_OR_RETURN(const scheduler::RepeatProblem rp,
                              scheduler::ParseRepeatPrompt(p.prompt));
      const scheduler::Slip slip =
          scheduler::RandomSlip(rp, o.slip_max_delta, o.slip_from, style_rng);
      solution = scheduler::RepeatSolution(rp, slip.step, slip.delta, &answer);
      ++slipped;
    }
    const std::vector<int32_t> sol = scheduler::EncodeContinuation(tok, solution);
    s.tokens.insert(s.tokens.end(), sol.begin(), sol.end());
    s.tokens.push_back(tok.eos_id());
    if (static_cast<int>(s.tokens.size()) > mc.max_seq_len) {
      return InvalidArgument("pretrain: a problem needs " + std::to_string(s.tokens.size()) +
                             " tokens; raise max_seq_len above " + std::to_string(mc.max_seq_len));
    }
    corpus.push_back(std::move(s));
  }
  spdlog::info("pretrain: task {}; model {} ({} params); corpus {} train problems ({} with a slip)",
               o.task.task, mc.ToString(), weights.num_params(), corpus.size(), slipped);

  learner::PretrainConfig pc;
  pc.steps = o.steps;
  pc.batch_size = o.batch_size;
  pc.seed = o.seed;
  pc.adamw.lr = o.lr;
  pc.adamw.warmup_steps = o.warmup_steps;
  pc.adamw.decay_steps = o.steps;
  pc.adamw.min_lr_ratio = o.min_lr_ratio;
  pc.adamw.weight_decay = o.weight_decay;
  pc.log_every = o.log_every;
  pc.blas_threads = o.blas_threads;
  auto on_log = [](const learner::PretrainLog& l) {
    std::printf("step %5d  loss %.4f  lr %.2e  grad_norm %.3f  tok/s %.0f\n", l.step, l.loss, l.lr,
                l.grad_norm, l.tokens_per_s);
    std::fflush(stdout);
  };
  TREEPO_ASSIGN_OR_RETURN(learner::PretrainStats stats,
                          learner::Pretrain(pc, corpus, &weights, on_log));

  PretrainOutput out;
  out.model_dir = o.out_dir;
  out.tokenizer_path = (fs::path(o.out_dir) / "tokenizer.bin").string();
  out.num_params = static_cast<int64_t>(weights.num_params());
  out.tokens_trained = stats.tokens;
  out.wall_s = stats.wall_s;
  out.first_loss = stats.first_loss;
  out.final_loss = stats.last_loss;
  TREEPO_RETURN_IF_ERROR(model::SaveHfModel(weights, o.out_dir));
  TREEPO_RETURN_IF_ERROR(tok.SaveLlama2c(out.tokenizer_path));
  TREEPO_RETURN_IF_ERROR(
      WriteText((fs::path(o.out_dir) / "task.json").string(), TaskOptionsJson(o.task)));
  spdlog::info("pretrain: {} steps in {:.1f} s; wrote {}", o.steps, stats.wall_s, o.out_dir);

  if (o.eval_problems > 0) {
    EvalOptions eo;
    eo.model_path = o.out_dir;
    eo.samples = 0;
    eo.problems = o.eval_problems;
    eo.has_task = true;
    eo.task = o.task;
    eo.seed = o.seed;
    eo.max_new_tokens = std::max(1, std::min(o.eval_max_new_tokens, o.max_seq_len - 32));
    eo.progress = false;
    TREEPO_ASSIGN_OR_RETURN(EvalReport rep, RunEval(eo));
    out.heldout_accuracy = rep.accuracy;
  }
  return out;
}

}  // namespace treepo::cluster
