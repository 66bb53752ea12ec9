// `treepo eval`: greedy accuracy, Maj@k and pass@k of a model (cluster/eval_job.h).
//
// stdout: a table of the metrics. --out writes them as JSON. stderr: logs and progress.
#include <iostream>
#include <memory>

#include "cluster/command.h"
#include "cluster/eval_job.h"
#include "common/log.h"

namespace treepo::cluster {

void RegisterEval(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd =
      app.add_subcommand("eval", "Accuracy, Maj@k and pass@k of a model (in-process engine)");
  cmd->add_option("--model", o->model_path, "HF model dir or llama2.c .bin")->required();
  cmd->add_option("--tokenizer", o->tokenizer_path,
                  "tokenizer.json or llama2.c tokenizer.bin (default: the model's)");
  cmd->add_flag("--chat", o->chat.enabled,
                "prompts as user messages rendered with the model's chat template");
  cmd->add_option("--system-prompt", o->chat.system_prompt, "chat mode: system message");
  cmd->add_option("--instruction-suffix", o->chat.instruction_suffix,
                  "chat mode: appended to each prompt (e.g. 'Put the final answer in \\boxed{}.')");
  cmd->add_option("--enable-thinking", o->chat.enable_thinking,
                  "chat mode: the template's enable_thinking (true | false)");
  cmd->add_option("--samples", o->samples,
                  "k samples per problem at temperature 1 (0: greedy only)")
      ->capture_default_str();
  cmd->add_option("--split", o->split, "heldout | train (built-in task)")->capture_default_str();
  cmd->add_option("--problems", o->problems, "problems (prompt file: first N, 0 = all)")
      ->capture_default_str();
  cmd->add_option("--prompts", o->prompts_path, "JSON-lines prompt file instead of the task");
  cmd->add_option("--prompt-field", o->prompt_field, "prompt field (default: the set's own)");
  cmd->add_option("--answer-field", o->answer_field, "answer field (default: the set's own)");
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "response cap")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "temperature of the k samples")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "problem set and sample seed")->capture_default_str();
  cmd->add_option("--reward", o->reward, "reward function")->capture_default_str();
  cmd->add_option("--out", o->out_json, "write the metrics as JSON");
  cmd->add_option("--batch-problems", o->batch_problems, "problems in flight")
      ->capture_default_str();
  cmd->add_option("--threads", o->blas_threads, "BLAS threads (0: library default)")
      ->capture_default_str();
  cmd->add_option("--show", o->show, "print the first N greedy responses with their verdicts")
      ->capture_default_str();
  cmd->add_option("--responses-out", o->responses_out,
                  "write every response (greedy and samples) with its verdict as JSON lines");
  cmd->callback([o, exit_code] {
    InitLogging("eval");
    Result<EvalReport> r = RunEval(*o);
    if (!r.ok()) {
      spdlog::error("eval: {}", r.status().ToString());
      *exit_code = 1;
      return;
    }
    PrintEvalTable(*r, std::cout);
  });
}

}  // namespace treepo::cluster
