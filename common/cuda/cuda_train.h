// The CUDA training backend (compute::TrainBackend; docs/gpu.md "The GPU learner").
#pragma once

#include <memory>

#include "common/compute/train_backend.h"
#include "common/model/weights.h"
#include "common/status.h"

namespace treepo::cuda {

// See compute::CreateCudaTrainBackend.
Result<std::unique_ptr<compute::TrainBackend>> CreateCudaTrainer(
    int device, std::shared_ptr<const model::ModelWeights> weights,
    const compute::AdamWOptions* adamw);

}  // namespace treepo::cuda
