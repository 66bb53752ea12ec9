// Learner checkpoints. A checkpoint is a directory that common tools read as a model:
//   config.json + model.safetensors   the weights (SaveHfModel; Hugging Face Llama layout)
//   optimizer.safetensors             AdamW state (m, v, step)
//   state.json                        {"step": N, "version": V, "prompts_drawn": P}: RL steps
//                                     done, weight version, the dataset cursor (P optional).
//                                     The rollouts' random streams are pure functions of the
//                                     run seed, step and round, and the trainer draws none, so
//                                     this and the weights and optimizer are the whole state.
//   tokenizer.bin, task.json, ...     the companion files of the model trained from (below),
//                                     so `treepo eval --model CHECKPOINT` needs nothing else
// Written to "<dir>.tmp", every file and the directory fsynced, then renamed (and the parent
// fsynced), so a checkpoint directory is whole or absent, also after a power loss.
#pragma once

#include <cstdint>
#include <string>

#include "common/model/weights.h"
#include "common/status.h"
#include "learner/adamw.h"

namespace treepo::learner {

inline constexpr char kOptimizerFile[] = "optimizer.safetensors";
inline constexpr char kStateFile[] = "state.json";

struct CheckpointState {
  int64_t step = 0;      // RL steps done
  uint64_t version = 0;  // weight version of the saved weights
  // The scheduler's dataset cursor after those steps (prompts drawn since the run began, from
  // TreeBatch::prompts_drawn); -1: not recorded (older checkpoints, outside schedulers).
  int64_t prompts_drawn = -1;
};

// "<root>/step_000012".
std::string CheckpointDir(const std::string& root, int64_t step);

// The files besides the weights that make a model directory usable on its own; each that
// exists in the source model's directory is copied into every checkpoint.
inline constexpr const char* kCompanionFiles[] = {"tokenizer.bin", "tokenizer.json",
                                                  "tokenizer_config.json", "task.json"};

// Writes the checkpoint (replacing one already at `dir`). `companions_from`: the directory of
// the model the run started from ("" or a file path: no companions).
Status SaveCheckpoint(const std::string& dir, const model::ModelWeights& weights,
                      const AdamW& optimizer, const CheckpointState& state,
                      const std::string& companions_from = "");

// Reads state.json (kNotFound when absent, kDataLoss when malformed).
Result<CheckpointState> ReadCheckpointState(const std::string& dir);

// The newest complete checkpoint under `root` (step_N directories; ".tmp" ones are writes
// that never finished): state.json readable and naming step N, config.json,
// model.safetensors and optimizer.safetensors present and not empty. An incomplete newer one
// (a crash mid-write, a damaged disk) is skipped with a warning, so the previous one is used.
// max_step >= 0: only steps <= max_step. kNotFound when there is none.
Result<std::string> NewestCompleteCheckpoint(const std::string& root, int64_t max_step = -1);

}  // namespace treepo::learner
