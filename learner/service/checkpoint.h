// Learner checkpoints. A checkpoint is a directory that common tools read as a model:
//   config.json + model.safetensors   the weights (SaveHfModel; Hugging Face Llama layout)
//   optimizer.safetensors             AdamW state (m, v, step)
//   state.json                        {"step": N, "version": V}: RL steps done, weight version
// Written to "<dir>.tmp" and renamed, so a checkpoint directory is whole or absent.
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
};

// "<root>/step_000012".
std::string CheckpointDir(const std::string& root, int64_t step);

// Writes the checkpoint (replacing one already at `dir`).
Status SaveCheckpoint(const std::string& dir, const model::ModelWeights& weights,
                      const AdamW& optimizer, const CheckpointState& state);

// Reads state.json (kNotFound when absent, kDataLoss when malformed).
Result<CheckpointState> ReadCheckpointState(const std::string& dir);

}  // namespace treepo::learner
