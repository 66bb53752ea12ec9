// `treepo generate`: sample a continuation of a prompt with the CPU engine.
//
// stdout: the prompt followed by the continuation. stderr: logs. --logits-out writes float32
// little-endian logits, one row of vocab values per position from BOS up to the position that
// produced the last token (prompt tokens + new tokens - 1 rows).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "cluster/command.h"
#include "common/atomic_file.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/model/llama2c.h"
#include "common/model/safetensors.h"
#include "common/model/text_tokenizer.h"
#include "common/sampling_check.h"
#include "worker/engine/engine.h"

namespace treepo::cluster {
namespace {

struct GenerateOptions {
  std::string model_path;
  std::string tokenizer_path;
  std::string prompt;
  int max_tokens = 64;
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 0;
  uint64_t seed = 0;
  std::string logits_out;
};

Status WriteLogits(const std::string& path, const worker::SegmentResult& r) {
  TREEPO_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::Create(path));
  for (const std::vector<float>* v : {&r.prefix_logits, &r.children[0].logits}) {
    TREEPO_RETURN_IF_ERROR(out.Append(
        std::string_view(reinterpret_cast<const char*>(v->data()), v->size() * sizeof(float))));
  }
  return out.Commit();
}

Status RunGenerate(const GenerateOptions& o) {
  if (o.max_tokens < 1) return InvalidArgument("--max-tokens must be >= 1");
  TREEPO_RETURN_IF_ERROR(CheckSamplingParams(o.temperature, o.top_p, o.top_k, "--"));
  if (!o.logits_out.empty())
    TREEPO_RETURN_IF_ERROR(CheckWritableFile(o.logits_out, "--logits-out"));
  TREEPO_ASSIGN_OR_RETURN(model::ModelWeights loaded,
                          model::LoadModel(o.model_path, /*keep_16bit=*/true));
  auto weights = std::make_shared<const model::ModelWeights>(std::move(loaded));
  const model::ModelConfig& c = weights->config;
  std::string tokenizer_path = o.tokenizer_path;
  if (tokenizer_path.empty()) {
    if (!std::filesystem::is_directory(o.model_path)) {
      return InvalidArgument("--tokenizer is required for a .bin model");
    }
    // tokenizer.json beside config.json, else tokenizer.bin.
    TREEPO_ASSIGN_OR_RETURN(tokenizer_path, model::FindTokenizerFile(o.model_path));
  }
  TREEPO_RETURN_IF_ERROR(CheckReadableFile(tokenizer_path, "tokenizer"));
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<model::TextTokenizer> tok,
                          model::LoadTextTokenizer(tokenizer_path, c.vocab_size));
  const std::vector<int32_t> prompt = tok->Encode(o.prompt, /*add_special_tokens=*/true);
  if (prompt.empty()) return InvalidArgument("the prompt encodes to no tokens");
  spdlog::info("model {}; prompt {} tokens", c.ToString(), prompt.size());

  worker::EngineOptions eo;
  const int64_t positions = static_cast<int64_t>(prompt.size()) + o.max_tokens;
  eo.kv.num_pages = static_cast<int>(
      std::min<int64_t>(positions / eo.kv.page_size + 2, static_cast<int64_t>(1) << 24));
  TREEPO_ASSIGN_OR_RETURN(auto engine, worker::Engine::Create(weights, WeightVersion(0), eo));

  worker::SegmentRequest req;
  req.task = TaskId(0);
  req.prefix_tokens = prompt;
  req.children = {NodeId(1)};
  req.seeds = {o.seed};
  req.max_new_tokens = o.max_tokens;
  req.sampling.temperature = o.temperature;
  req.sampling.top_p = o.top_p;
  req.sampling.top_k = o.top_k;
  req.keep_kv = false;
  req.return_logits = !o.logits_out.empty();
  TREEPO_RETURN_IF_ERROR(engine->Submit(std::move(req)));
  std::vector<worker::SegmentResult> results = engine->RunUntilIdle();
  const worker::ChildResult& child = results.at(0).children.at(0);

  std::string text = tok->Decode(child.tokens, /*skip_special_tokens=*/true);
  // llama2.c drops the space of the first piece after BOS (its dummy prefix).
  if (tok->format() == "llama2.c" && prompt.size() == 1 && !text.empty() && text[0] == ' ') {
    text.erase(0, 1);
  }
  std::cout << o.prompt << text << "\n";
  std::cout.flush();
  spdlog::info("{} tokens ({}), prefill {:.1f} ms, decode {:.1f} ms", child.tokens.size(),
               worker::FinishReasonName(child.finish), child.timings.prefill_ms,
               child.timings.decode_ms);
  if (!o.logits_out.empty()) TREEPO_RETURN_IF_ERROR(WriteLogits(o.logits_out, results[0]));
  return OkStatus();
}

}  // namespace

void RegisterGenerate(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Sample a continuation of a prompt (CPU)");
  cmd->add_option("--model", opts->model_path, "llama2.c checkpoint or HF model dir")->required();
  cmd->add_option("--tokenizer", opts->tokenizer_path,
                  "tokenizer.json or llama2.c tokenizer.bin (default: the model dir's)");
  cmd->add_option("--prompt", opts->prompt, "prompt text (empty: start from BOS)");
  cmd->add_option("--max-tokens", opts->max_tokens, "tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", opts->temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", opts->top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--top-k", opts->top_k, "keep the k most likely tokens (0: all)")
      ->capture_default_str();
  cmd->add_option("--seed", opts->seed, "random seed")->capture_default_str();
  cmd->add_option("--logits-out", opts->logits_out, "write float32 logits rows to this file");
  cmd->callback([opts, exit_code] {
    InitLogging("generate");
    const Status st = RunGenerate(*opts);
    if (!st.ok()) {
      spdlog::error("generate: {}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster
