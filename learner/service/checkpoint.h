// Learner checkpoints. A checkpoint is a directory that common tools read as a model:
//   config.json + model.safetensors   the weights (SaveHfModel; Hugging Face Llama layout)
//   optimizer.safetensors             the learner algorithm's state (LearnerAlgorithm::SaveState;
//                                     the built-in's AdamW m, v, step; a plug-in's own files)
//   state.json                        {"step": N, "version": V, "prompts_drawn": P,
//                                     "algorithm": A, "state_files": [F...]}: RL steps done,
//                                     weight version, the dataset cursor (P optional), the
//                                     learner algorithm and the files its SaveState wrote
//                                     (absent in older checkpoints: ppo_clip's optimizer file).
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
#include <vector>

#include "common/model/weights.h"
#include "common/status.h"
#include "learner/service/learner_algorithm.h"

namespace treepo::learner {

inline constexpr char kOptimizerFile[] = "optimizer.safetensors";
inline constexpr char kStateFile[] = "state.json";

struct CheckpointState {
  int64_t step = 0;      // RL steps done
  uint64_t version = 0;  // weight version of the saved weights
  // The scheduler's dataset cursor after those steps (prompts drawn since the run began, from
  // TreeBatch::prompts_drawn); -1: not recorded (older checkpoints, outside schedulers).
  int64_t prompts_drawn = -1;
  // The learner algorithm that wrote it ("" in older checkpoints: the built-in) and the files
  // its state is in (SaveCheckpoint fills both).
  std::string algorithm;
  std::vector<std::string> state_files = {kOptimizerFile};
};

// "<root>/step_000012".
std::string CheckpointDir(const std::string& root, int64_t step);

// The files besides the weights that make a model directory usable on its own; each that
// exists in the source model's directory is copied into every checkpoint.
inline constexpr const char* kCompanionFiles[] = {"tokenizer.bin", "tokenizer.json",
                                                  "tokenizer_config.json", "task.json"};

// Writes the checkpoint of `algorithm` (its weights and SaveState; replacing one already at
// `dir`) with `state`'s step, version and prompts_drawn. `companions_from`: the directory of
// the model the run started from ("" or a file path: no companions).
Status SaveCheckpoint(const std::string& dir, const LearnerAlgorithm& algorithm,
                      const CheckpointState& state, const std::string& companions_from = "");

// Reads state.json (kNotFound when absent, kDataLoss when malformed).
Result<CheckpointState> ReadCheckpointState(const std::string& dir);

// The newest complete checkpoint under `root` (step_N directories; ".tmp" ones are writes
// that never finished): state.json readable and naming step N, config.json,
// model.safetensors and the algorithm's state files present and not empty. An incomplete newer one
// (a crash mid-write, a damaged disk) is skipped with a warning, so the previous one is used.
// max_step >= 0: only steps <= max_step. kNotFound when there is none.
Result<std::string> NewestCompleteCheckpoint(const std::string& root, int64_t max_step = -1);

}  // namespace treepo::learner
