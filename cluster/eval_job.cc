#include "cluster/eval_job.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <type_traits>

#include "cluster/pretrain_job.h"
#include "common/atomic_file.h"
#include "common/file_io.h"
#include "common/json_file.h"
#include "common/json_number.h"
#include "common/log.h"
#include "common/model/safetensors.h"
#include "common/model/tokenizer.h"
#include "common/progress.h"
#include "common/sampling_check.h"
#include "scheduler/dataset/prompt_dataset.h"
#include "scheduler/dataset/task_source.h"
#include "scheduler/eval/metrics.h"
#include "scheduler/reward/reward_fn.h"
#include "worker/engine/engine.h"

namespace treepo::cluster {

namespace fs = std::filesystem;

Status EvalOptions::Validate() const {
  if (model_path.empty()) return InvalidArgument("eval: --model is required");
  if (samples < 0) return InvalidArgument("eval: --samples must be >= 0");
  if (Status s = chat.Validate(); !s.ok()) return s.WithContext("eval");
  if (split != "heldout" && split != "train") {
    return InvalidArgument("eval: --split must be heldout or train");
  }
  if (problems < 0) return InvalidArgument("eval: --problems must be >= 0");
  if (prompts_path.empty() && problems == 0) {
    return InvalidArgument("eval: --problems must be >= 1 for the built-in task");
  }
  if (max_new_tokens < 1) return InvalidArgument("eval: --max-new-tokens must be >= 1");
  if (!(temperature > 0.0f)) return InvalidArgument("eval: --temperature must be > 0");
  TREEPO_RETURN_IF_ERROR(CheckSamplingParams(temperature, 1.0, 0, "eval: --"));
  if (batch_problems < 1) return InvalidArgument("eval: batch_problems must be >= 1");
  if (blas_threads < 0) return InvalidArgument("eval: blas_threads must be >= 0");
  if (has_task) TREEPO_RETURN_IF_ERROR(task.Validate());
  return OkStatus();
}

namespace {

struct Problem {
  std::string prompt;
  std::string answer;
};

std::string ModelDir(const std::string& model_path) {
  return fs::is_directory(model_path) ? model_path : fs::path(model_path).parent_path().string();
}

Result<std::vector<Problem>> LoadProblems(const EvalOptions& o, std::string* source) {
  std::vector<Problem> out;
  if (o.prompts_path.empty()) {
    scheduler::ArithmeticOptions knobs = o.task;
    if (!o.has_task) {
      const std::string task_json = (fs::path(ModelDir(o.model_path)) / "task.json").string();
      if (fs::exists(task_json)) {
        TREEPO_ASSIGN_OR_RETURN(knobs, ReadTaskOptions(task_json));
      }
    }
    TREEPO_ASSIGN_OR_RETURN(scheduler::ArithmeticTask task,
                            scheduler::ArithmeticTask::Create(knobs));
    const scheduler::Split split =
        o.split == "train" ? scheduler::Split::kTrain : scheduler::Split::kHeldOut;
    for (const scheduler::PromptRecord& r :
         scheduler::ArithmeticRecords(task, split, o.problems, o.seed)) {
      out.push_back({r.prompt, r.answer.value_or("")});
    }
    *source = knobs.task + ":" + o.split;
    return out;
  }
  scheduler::PromptFileOptions fo;
  auto known = scheduler::MathEvalOptions(fs::path(o.prompts_path).stem().string());
  if (known.ok()) fo = *known;
  if (!o.prompt_field.empty()) fo.prompt_field = o.prompt_field;
  if (!o.answer_field.empty()) fo.answer_field = o.answer_field;
  TREEPO_ASSIGN_OR_RETURN(auto records, scheduler::LoadPromptFile(o.prompts_path, fo));
  for (const scheduler::PromptRecord& r : records) {
    if (!r.answer) continue;
    out.push_back({r.prompt, *r.answer});
    if (o.problems > 0 && static_cast<int>(out.size()) >= o.problems) break;
  }
  *source = o.prompts_path;
  return out;
}

// The responses of one problem: [0] greedy, [1..k] sampled.
struct ProblemResponses {
  std::vector<std::vector<int32_t>> tokens;
};

// Runs every problem through the engine: per problem a greedy task (one child, T = 0) and a
// sampled task (k children). Tasks are submitted while the pool has pages and stepped until
// all finish.
Result<std::vector<ProblemResponses>> Generate(const EvalOptions& o,
                                               std::shared_ptr<const model::ModelWeights> weights,
                                               const std::vector<std::vector<int32_t>>& prompts) {
  const int k = o.samples;
  const int max_prompt = static_cast<int>(
      std::max_element(prompts.begin(), prompts.end(), [](const auto& a, const auto& b) {
        return a.size() < b.size();
      })->size());
  const int max_new = std::min(o.max_new_tokens, weights->config.max_seq_len - max_prompt);
  if (max_new < 1) {
    return InvalidArgument("eval: a prompt of " + std::to_string(max_prompt) +
                           " tokens leaves no room in the model's " +
                           std::to_string(weights->config.max_seq_len) + " positions");
  }
  if (max_new < o.max_new_tokens) {
    spdlog::info("eval: responses capped at {} tokens (model positions)", max_new);
  }
  worker::EngineOptions eo;
  eo.blas_threads = o.blas_threads;
  const int page = eo.kv.page_size;
  const int pages_per_seq = (max_prompt + max_new) / page + 2;
  const int in_flight = std::min<int>(o.batch_problems, static_cast<int>(prompts.size()));
  eo.kv.num_pages = in_flight * (k + 2) * pages_per_seq;
  eo.max_step_tokens = std::max(512, in_flight * (k + 1) + 256);
  TREEPO_ASSIGN_OR_RETURN(auto engine, worker::Engine::Create(weights, WeightVersion(0), eo));

  std::vector<ProblemResponses> out(prompts.size());
  for (ProblemResponses& r : out) r.tokens.resize(1 + k);
  std::deque<worker::SegmentRequest> pending;
  uint64_t next_node = 1;
  for (size_t i = 0; i < prompts.size(); ++i) {
    for (int kind = 0; kind < (k > 0 ? 2 : 1); ++kind) {
      worker::SegmentRequest req;
      req.task = TaskId(2 * i + kind);
      req.prefix_tokens = prompts[i];
      const int children = kind == 0 ? 1 : k;
      for (int c = 0; c < children; ++c) {
        req.children.push_back(NodeId(next_node++));
        req.seeds.push_back(o.seed * 1000003 + 2 * i + kind);
      }
      req.max_new_tokens = max_new;
      req.sampling.temperature = kind == 0 ? 0.0f : o.temperature;
      req.keep_kv = false;
      pending.push_back(std::move(req));
    }
  }
  const int64_t total = static_cast<int64_t>(pending.size());
  int64_t done = 0;
  ProgressBar bar("tasks", total, o.progress);
  while (done < total) {
    while (!pending.empty() && engine->Load().tasks < 2 * in_flight) {
      Status st = engine->Submit(pending.front());
      if (st.code() == StatusCode::kResourceExhausted && !engine->Idle()) break;
      TREEPO_RETURN_IF_ERROR(st);
      pending.pop_front();
    }
    for (worker::SegmentResult& r : engine->Step()) {
      const size_t i = r.task.value() / 2;
      const int kind = static_cast<int>(r.task.value() % 2);
      for (size_t c = 0; c < r.children.size(); ++c) {
        out[i].tokens[kind == 0 ? 0 : 1 + c] = std::move(r.children[c].tokens);
      }
      ++done;
    }
    bar.Update(done);
  }
  bar.Finish();
  return out;
}

}  // namespace

Result<EvalReport> RunEval(const EvalOptions& o) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
  // Outputs are checked before the work, so a long eval never ends with "cannot write".
  if (!o.out_json.empty()) TREEPO_RETURN_IF_ERROR(CheckWritableFile(o.out_json, "eval: --out"));
  std::optional<AtomicFile> responses_file;
  if (!o.responses_out.empty()) {
    TREEPO_RETURN_IF_ERROR(CheckWritableFile(o.responses_out, "eval: --responses-out"));
    TREEPO_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(o.responses_out));
    responses_file.emplace(std::move(f));
  }
  const auto start = std::chrono::steady_clock::now();
  EvalReport rep;
  rep.model = o.model_path;
  rep.samples = o.samples;
  TREEPO_ASSIGN_OR_RETURN(std::vector<Problem> problems, LoadProblems(o, &rep.source));
  if (problems.empty()) return InvalidArgument("eval: no problems with answers");
  rep.problems = static_cast<int>(problems.size());

  TREEPO_ASSIGN_OR_RETURN(model::ModelWeights loaded,
                          model::LoadModel(o.model_path, /*keep_16bit=*/true));
  auto weights = std::make_shared<const model::ModelWeights>(std::move(loaded));
  TREEPO_ASSIGN_OR_RETURN(
      std::shared_ptr<const model::TextTokenizer> tokenizer,
      scheduler::LoadModelTokenizer(o.tokenizer_path, o.model_path, weights->config.vocab_size));
  const model::TextTokenizer& tok = *tokenizer;
  TREEPO_ASSIGN_OR_RETURN(
      const scheduler::PromptEncoder encoder,
      scheduler::PromptEncoder::Create(
          tokenizer, o.chat, o.tokenizer_path.empty() ? ModelDir(o.model_path) : o.tokenizer_path));
  scheduler::RewardOptions ro;
  ro.name = o.reward;
  TREEPO_ASSIGN_OR_RETURN(auto reward, scheduler::MakeRewardFn(ro));

  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < problems.size(); ++i) {
    Result<std::vector<int32_t>> ids = encoder.Encode(problems[i].prompt);
    if (!ids.ok()) return ids.status().WithContext("eval: problem " + std::to_string(i + 1));
    prompts.push_back(std::move(ids).value());
  }
  spdlog::info("eval: {} problems from {}, k = {}, model {}", problems.size(), rep.source,
               o.samples, weights->config.ToString());
  TREEPO_ASSIGN_OR_RETURN(auto responses, Generate(o, weights, prompts));

  int64_t responses_count = 0;
  double greedy_correct = 0, boxed = 0, maj = 0, pass_k = 0, pass_1 = 0;
  for (size_t i = 0; i < problems.size(); ++i) {
    std::vector<scheduler::SampleOutcome> outcomes;
    nlohmann::json line;
    if (responses_file) {
      line["prompt"] = problems[i].prompt;
      line["answer"] = problems[i].answer;
      line["samples"] = nlohmann::json::array();
    }
    for (size_t s = 0; s < responses[i].tokens.size(); ++s) {
      std::vector<int32_t>& t = responses[i].tokens[s];
      rep.tokens_generated += static_cast<int64_t>(t.size());
      ++responses_count;
      const std::string text = tok.Decode(t, /*skip_special_tokens=*/true);
      const scheduler::RewardResult r =
          reward->Score(text, problems[i].answer, static_cast<int>(t.size()));
      const bool correct = r.reward > 0.0f;
      if (responses_file) {
        nlohmann::json resp = {{"text", text}, {"extracted", r.extracted}, {"correct", correct}};
        if (s == 0) {
          line["greedy"] = std::move(resp);
        } else {
          line["samples"].push_back(std::move(resp));
        }
      }
      if (s == 0) {
        greedy_correct += correct;
        boxed += !r.extracted.empty();
        if (static_cast<int>(i) < o.show) {
          std::printf("[%s] %s%s   (answer %s)\n", correct ? "correct" : "wrong",
                      problems[i].prompt.c_str(), text.c_str(), problems[i].answer.c_str());
        }
      } else {
        outcomes.push_back({r.extracted, correct});
      }
    }
    if (responses_file) {
      TREEPO_RETURN_IF_ERROR(responses_file->Append(
          line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"));
    }
    if (o.samples > 0) {
      const int c = static_cast<int>(
          std::count_if(outcomes.begin(), outcomes.end(), [](const auto& x) { return x.correct; }));
      TREEPO_ASSIGN_OR_RETURN(double m, scheduler::MajAtK(outcomes, o.samples, 1000, o.seed + i));
      TREEPO_ASSIGN_OR_RETURN(double p, scheduler::PassAtK(o.samples, c, o.samples));
      maj += m;
      pass_k += p;
      pass_1 += static_cast<double>(c) / o.samples;
    }
  }
  const double n = static_cast<double>(problems.size());
  rep.accuracy = greedy_correct / n;
  rep.boxed_rate = boxed / n;
  rep.maj_at_k = maj / n;
  rep.pass_at_k = pass_k / n;
  rep.pass_at_1 = pass_1 / n;
  rep.mean_response_tokens = static_cast<double>(rep.tokens_generated) / responses_count;
  rep.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (responses_file) TREEPO_RETURN_IF_ERROR(responses_file->Commit());
  if (!o.out_json.empty()) {
    TREEPO_RETURN_IF_ERROR(WriteFileAtomically(o.out_json, EvalReportJson(rep) + "\n"));
  }
  return rep;
}

std::string EvalReportJson(const EvalReport& r) {
  nlohmann::json j;
  j["model"] = r.model;
  j["source"] = r.source;
  j["problems"] = r.problems;
  j["samples"] = r.samples;
  j["accuracy"] = r.accuracy;
  j["maj_at_k"] = r.maj_at_k;
  j["pass_at_k"] = r.pass_at_k;
  j["pass_at_1"] = r.pass_at_1;
  j["boxed_rate"] = r.boxed_rate;
  j["mean_response_tokens"] = r.mean_response_tokens;
  j["tokens_generated"] = r.tokens_generated;
  j["wall_s"] = r.wall_s;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<EvalReport> ReadEvalReport(const std::string& path) {
  TREEPO_ASSIGN_OR_RETURN(const nlohmann::json j, ReadJsonObjectFile(path));
  EvalReport r;
  auto count = [&](const char* key, auto* out) -> Status {
    if (!j.contains(key)) return OkStatus();
    using T = std::remove_pointer_t<decltype(out)>;
    Result<T> v = JsonToInt<T>(j[key], key);
    if (!v.ok()) return DataLoss(path + ": " + v.status().message());
    *out = *v;
    return OkStatus();
  };
  TREEPO_RETURN_IF_ERROR(count("problems", &r.problems));
  TREEPO_RETURN_IF_ERROR(count("samples", &r.samples));
  TREEPO_RETURN_IF_ERROR(count("tokens_generated", &r.tokens_generated));
  try {
    r.model = j.value("model", "");
    r.source = j.value("source", "");
    r.accuracy = j.value("accuracy", 0.0);
    r.maj_at_k = j.value("maj_at_k", 0.0);
    r.pass_at_k = j.value("pass_at_k", 0.0);
    r.pass_at_1 = j.value("pass_at_1", 0.0);
    r.boxed_rate = j.value("boxed_rate", 0.0);
    r.mean_response_tokens = j.value("mean_response_tokens", 0.0);
    r.wall_s = j.value("wall_s", 0.0);
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(path + ": " + e.what());
  }
  return r;
}

void PrintEvalTable(const EvalReport& r, std::ostream& out) {
  const std::string k = std::to_string(r.samples);
  out << "model    " << r.model << "\n"
      << "source   " << r.source << " (" << r.problems << " problems)\n"
      << std::fixed << std::setprecision(2);
  out << "| metric | value |\n|---|---|\n";
  out << "| accuracy (greedy) | " << 100.0 * r.accuracy << "% |\n";
  if (r.samples > 0) {
    out << "| Maj@" << k << " (T=1) | " << 100.0 * r.maj_at_k << "% |\n";
    out << "| pass@" << k << " (T=1) | " << 100.0 * r.pass_at_k << "% |\n";
    out << "| pass@1 (T=1) | " << 100.0 * r.pass_at_1 << "% |\n";
  }
  out << "| boxed answers (greedy) | " << 100.0 * r.boxed_rate << "% |\n";
  out << "| mean response tokens | " << r.mean_response_tokens << " |\n";
  out << "| wall | " << r.wall_s << " s |\n";
  out.unsetf(std::ios::floatfield);
}

}  // namespace treepo::cluster
