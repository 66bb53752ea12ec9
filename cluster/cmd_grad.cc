// `treepo grad`: gradients of a teacher-forced negative log-likelihood, for checking the
// learner's backward pass against another framework.
//
// L = sum over t >= P of -log p(tokens[t] | tokens[..t)), one sequence, full causal attention,
// fp32 CPU. The output safetensors file holds dL/dW per tensor under Hugging Face names
// (ParamLayout's), plus metadata "loss" and "prompt_len". For llama2.c checkpoints the q_proj /
// k_proj rows stay in llama2.c's adjacent-pair RoPE order (as the weights are kept), so their
// gradients are in that order too, not permuted to the HF rotate-half layout.
//
// With --trees FILE (a tree file, docs/tree-format.md) instead of --tokens-file: L = the sum
// over every leaf of every tree of the summed NLL of the leaf's response along its
// root-to-leaf path (prompt + path tokens, teacher forced; a token shared by several paths
// counts once per path), computed tree-packed (each tree one sequence, every distinct prefix
// once, ancestor-only attention) or, with --per-path, one sequence per leaf. Metadata: "loss",
// "leaves", "path_tokens", "rows" and "mode".
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "cluster/command.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/model/safetensors.h"
#include "common/model/tokenizer.h"
#include "common/tree/tree_record.h"
#include "learner/nll_grad.h"

namespace treepo::cluster {
namespace {

struct GradOptions {
  std::string model_path;
  std::string tokenizer_path;
  std::string tokens_file;
  std::string trees_file;
  bool per_path = false;
  int prompt_len = 1;
  std::string out;
};

Status RunTreeGrad(const GradOptions& o, const model::ModelWeights& w) {
  TREEPO_ASSIGN_OR_RETURN(std::vector<TreeRecord> trees, ReadTreeFile(o.trees_file));
  spdlog::info("model {}; {} trees, {}", w.config.ToString(), trees.size(),
               o.per_path ? "per path" : "tree-packed");
  TREEPO_ASSIGN_OR_RETURN(learner::TreeNllGradients g,
                          learner::ComputeTreeNllGradients(w, trees, !o.per_path));
  if (g.leaves == 0) return InvalidArgument(o.trees_file + ": no leaf has a response token");
  char loss[64];
  std::snprintf(loss, sizeof(loss), "%.9g", g.loss);
  TREEPO_RETURN_IF_ERROR(model::SaveSafetensors(o.out, g.grads,
                                                {{"loss", loss},
                                                 {"leaves", std::to_string(g.leaves)},
                                                 {"path_tokens", std::to_string(g.path_tokens)},
                                                 {"rows", std::to_string(g.rows)},
                                                 {"mode", o.per_path ? "per_path" : "packed"}}));
  std::cout << "loss " << loss << ", " << g.leaves << " leaves, " << g.rows << " rows for "
            << g.path_tokens << " path tokens, " << g.grads.size() << " tensors -> " << o.out
            << "\n";
  return OkStatus();
}

Status RunGrad(const GradOptions& o) {
  TREEPO_RETURN_IF_ERROR(CheckWritableFile(o.out, "--out"));
  if (o.tokens_file.empty() == o.trees_file.empty()) {
    return InvalidArgument("give exactly one of --tokens-file and --trees");
  }
  if (!o.trees_file.empty()) {
    TREEPO_RETURN_IF_ERROR(CheckReadableFile(o.trees_file, "--trees"));
  } else {
    TREEPO_RETURN_IF_ERROR(CheckReadableFile(o.tokens_file, "--tokens-file"));
    if (o.per_path) return InvalidArgument("--per-path needs --trees");
  }
  if (!o.tokenizer_path.empty())
    TREEPO_RETURN_IF_ERROR(CheckReadableFile(o.tokenizer_path, "tokenizer"));
  TREEPO_ASSIGN_OR_RETURN(model::ModelWeights w, model::LoadModel(o.model_path));
  const model::ModelConfig& c = w.config;
  if (!o.tokenizer_path.empty()) {
    if (std::filesystem::path(o.tokenizer_path).extension() == ".bin") {
      // Loading checks that the tokenizer's vocabulary fits the model's.
      TREEPO_ASSIGN_OR_RETURN(model::Tokenizer tok,
                              model::Tokenizer::LoadLlama2c(o.tokenizer_path, c.vocab_size));
      if (tok.vocab_size() != c.vocab_size) {
        return InvalidArgument("tokenizer has " + std::to_string(tok.vocab_size()) +
                               " tokens, model " + std::to_string(c.vocab_size));
      }
    } else if (!std::filesystem::exists(o.tokenizer_path)) {
      return InvalidArgument("tokenizer " + o.tokenizer_path + " does not exist");
    }
  }
  if (!o.trees_file.empty()) return RunTreeGrad(o, w);
  TREEPO_ASSIGN_OR_RETURN(std::vector<int32_t> tokens,
                          learner::ReadTokenFile(o.tokens_file, c.vocab_size));
  if (static_cast<int64_t>(tokens.size()) > c.max_seq_len) {
    return InvalidArgument(std::to_string(tokens.size()) + " tokens exceed the model's " +
                           std::to_string(c.max_seq_len) + " positions");
  }
  spdlog::info("model {}; {} tokens, prompt {}", c.ToString(), tokens.size(), o.prompt_len);
  TREEPO_ASSIGN_OR_RETURN(learner::NllGradients g,
                          learner::ComputeNllGradients(w, tokens, o.prompt_len));
  char loss[64];
  std::snprintf(loss, sizeof(loss), "%.9g", g.loss);
  TREEPO_RETURN_IF_ERROR(model::SaveSafetensors(
      o.out, g.grads, {{"loss", loss}, {"prompt_len", std::to_string(o.prompt_len)}}));
  std::cout << "loss " << loss << ", " << g.grads.size() << " tensors -> " << o.out << "\n";
  return OkStatus();
}

}  // namespace

void RegisterGrad(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<GradOptions>();
  CLI::App* cmd = app.add_subcommand(
      "grad",
      "Gradients (HF tensor names, safetensors) of the sum of -log p of the tokens after the "
      "first P (--tokens-file), or of every leaf's response along its path in a tree file "
      "(--trees, tree-packed). llama2.c models: q_proj/k_proj gradients keep llama2.c's "
      "adjacent-pair row order, like the weights.");
  cmd->add_option("--model", opts->model_path, "llama2.c .bin or HF model directory")->required();
  cmd->add_option("--tokenizer", opts->tokenizer_path,
                  "tokenizer (a llama2.c .bin is checked against the model's vocabulary)");
  cmd->add_option("--tokens-file", opts->tokens_file, "token ids separated by white space");
  cmd->add_option("--trees", opts->trees_file,
                  "tree file (JSON lines): gradient of the summed NLL of every leaf's path");
  cmd->add_flag("--per-path", opts->per_path,
                "with --trees: one sequence per leaf instead of one packed sequence per tree");
  cmd->add_option("--prompt-len", opts->prompt_len, "P: tokens not scored (>= 1)")
      ->capture_default_str();
  cmd->add_option("--out", opts->out, "output .safetensors file")->required();
  cmd->callback([opts, exit_code] {
    InitLogging("grad");
    const Status st = RunGrad(*opts);
    if (!st.ok()) {
      spdlog::error("grad: {}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster
