// `treepo pretrain`: train the built-in task's base model (cluster/pretrain_job.h).
//
// stdout: one loss line per --log-every steps, then a summary line. stderr: logs.
#include <cstdio>
#include <memory>

#include "cluster/command.h"
#include "cluster/pretrain_job.h"
#include "common/log.h"

namespace treepo::cluster {

void RegisterPretrain(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<PretrainOptions>();
  CLI::App* cmd =
      app.add_subcommand("pretrain", "Train a small base model on a built-in task (CPU)");
  cmd->add_option("--out", o->out_dir, "output model directory")->required();
  cmd->add_option("--task", o->task.task,
                  "built-in task: arithmetic (short sums) or reasoning (long chains with slips); "
                  "sets the defaults of the options below that are not given")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "init, corpus and order seed")->capture_default_str();
  cmd->add_option("--steps", o->steps, "optimiser steps")->capture_default_str();
  cmd->add_option("--batch", o->batch_size, "sequences per step")->capture_default_str();
  cmd->add_option("--lr", o->lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--warmup", o->warmup_steps, "warm-up steps")->capture_default_str();
  cmd->add_option("--direct-share", o->direct_answer_share,
                  "share of corpus solutions given as the bare answer, without working")
      ->capture_default_str();
  cmd->add_option("--direct-error", o->direct_answer_error,
                  "share of those bare answers that are careless guesses (off by 1..9)")
      ->capture_default_str();
  cmd->add_option("--slip-share", o->slip_share,
                  "share of worked solutions with one slip mid-chain (reasoning: 0.5)")
      ->capture_default_str();
  cmd->add_option("--slip-max-delta", o->slip_max_delta, "a slip is off by 1..this")
      ->capture_default_str();
  cmd->add_option("--slip-from", o->slip_from,
                  "the first step (0-based, >= 1) a slip can be in, later ones alike "
                  "(reasoning: 3)")
      ->capture_default_str();
  cmd->add_option("--min-lr-ratio", o->min_lr_ratio,
                  "cosine decay to lr * this at the last step (1: constant lr)")
      ->capture_default_str();
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_flag("--loss-on-prompt", o->loss_on_prompt, "also train on prompt tokens");
  cmd->add_option("--dim", o->dim, "model width")->capture_default_str();
  cmd->add_option("--hidden", o->hidden_dim, "SwiGLU width")->capture_default_str();
  cmd->add_option("--layers", o->n_layers, "layers")->capture_default_str();
  cmd->add_option("--heads", o->n_heads, "attention heads")->capture_default_str();
  cmd->add_option("--kv-heads", o->n_kv_heads, "key/value heads")->capture_default_str();
  cmd->add_option("--max-seq-len", o->max_seq_len, "positions")->capture_default_str();
  cmd->add_option("--corpus", o->corpus_problems, "distinct train problems")->capture_default_str();
  cmd->add_option("--min-terms", o->task.min_terms, "task: terms per sum (min)")
      ->capture_default_str();
  cmd->add_option("--max-terms", o->task.max_terms, "task: terms per sum (max)")
      ->capture_default_str();
  cmd->add_option("--min-digits", o->task.min_digits, "task: digits per term (min)")
      ->capture_default_str();
  cmd->add_option("--max-digits", o->task.max_digits, "task: digits per term (max)")
      ->capture_default_str();
  cmd->add_option("--subtract-prob", o->task.subtract_prob, "task: share of '-'")
      ->capture_default_str();
  cmd->add_option("--multiply-prob", o->task.multiply_prob, "task: share of products")
      ->capture_default_str();
  cmd->add_option("--min-steps", o->task.min_steps, "reasoning task: steps per chain (min)")
      ->capture_default_str();
  cmd->add_option("--max-steps", o->task.max_steps, "reasoning task: steps per chain (max)")
      ->capture_default_str();
  cmd->add_option("--held-out-percent", o->task.held_out_percent, "task: held-out share")
      ->capture_default_str();
  cmd->add_option("--eval-problems", o->eval_problems, "held-out problems for greedy accuracy")
      ->capture_default_str();
  cmd->add_option("--eval-max-new-tokens", o->eval_max_new_tokens,
                  "tokens per answer in that evaluation (at most max-seq-len - 32)")
      ->capture_default_str();
  cmd->add_option("--log-every", o->log_every, "loss line every N steps")->capture_default_str();
  cmd->add_option("--threads", o->blas_threads, "BLAS threads (0: library default)")
      ->capture_default_str();
  cmd->callback([o, exit_code, cmd] {
    InitLogging("pretrain");
    // The task's defaults, then every option given on the command line over them.
    Result<PretrainOptions> preset = PretrainPreset(o->task.task);
    if (!preset.ok()) {
      spdlog::error("{}", preset.status().ToString());
      *exit_code = 1;
      return;
    }
    PretrainOptions p = *preset;
    auto given = [&](const char* flag) { return cmd->count(flag) > 0; };
    auto keep = [&](const char* flag, auto member) {
      if (given(flag)) p.*member = (*o).*member;
    };
    auto keep_task = [&](const char* flag, auto member) {
      if (given(flag)) p.task.*member = o->task.*member;
    };
    p.out_dir = o->out_dir;
    keep("--seed", &PretrainOptions::seed);
    keep("--steps", &PretrainOptions::steps);
    keep("--batch", &PretrainOptions::batch_size);
    keep("--lr", &PretrainOptions::lr);
    keep("--warmup", &PretrainOptions::warmup_steps);
    keep("--direct-share", &PretrainOptions::direct_answer_share);
    keep("--direct-error", &PretrainOptions::direct_answer_error);
    keep("--slip-share", &PretrainOptions::slip_share);
    keep("--slip-max-delta", &PretrainOptions::slip_max_delta);
    keep("--slip-from", &PretrainOptions::slip_from);
    keep("--min-lr-ratio", &PretrainOptions::min_lr_ratio);
    keep("--weight-decay", &PretrainOptions::weight_decay);
    keep("--loss-on-prompt", &PretrainOptions::loss_on_prompt);
    keep("--dim", &PretrainOptions::dim);
    keep("--hidden", &PretrainOptions::hidden_dim);
    keep("--layers", &PretrainOptions::n_layers);
    keep("--heads", &PretrainOptions::n_heads);
    keep("--kv-heads", &PretrainOptions::n_kv_heads);
    keep("--max-seq-len", &PretrainOptions::max_seq_len);
    keep("--corpus", &PretrainOptions::corpus_problems);
    keep("--eval-problems", &PretrainOptions::eval_problems);
    keep("--eval-max-new-tokens", &PretrainOptions::eval_max_new_tokens);
    keep("--log-every", &PretrainOptions::log_every);
    keep("--threads", &PretrainOptions::blas_threads);
    keep_task("--min-terms", &scheduler::ArithmeticOptions::min_terms);
    keep_task("--max-terms", &scheduler::ArithmeticOptions::max_terms);
    keep_task("--min-digits", &scheduler::ArithmeticOptions::min_digits);
    keep_task("--max-digits", &scheduler::ArithmeticOptions::max_digits);
    keep_task("--subtract-prob", &scheduler::ArithmeticOptions::subtract_prob);
    keep_task("--multiply-prob", &scheduler::ArithmeticOptions::multiply_prob);
    keep_task("--min-steps", &scheduler::ArithmeticOptions::min_steps);
    keep_task("--max-steps", &scheduler::ArithmeticOptions::max_steps);
    keep_task("--held-out-percent", &scheduler::ArithmeticOptions::held_out_percent);
    Result<PretrainOutput> r = RunPretrain(p);
    if (!r.ok()) {
      spdlog::error("pretrain: {}", r.status().ToString());
      *exit_code = 1;
      return;
    }
    std::printf(
        "pretrained %s: %lld params, %lld tokens, %.1f s, loss %.4f -> %.4f, held-out greedy "
        "accuracy %.1f%%\n",
        r->model_dir.c_str(), static_cast<long long>(r->num_params),
        static_cast<long long>(r->tokens_trained), r->wall_s, r->first_loss, r->final_loss,
        100.0 * r->heldout_accuracy);
  });
}

}  // namespace treepo::cluster
