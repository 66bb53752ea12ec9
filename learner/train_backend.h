// The learner's side of the training seam (common/compute/train_backend.h): the CPU backend
// (TrainModel + AdamW, the reference) and the factory that picks cpu or cuda by name.
#pragma once

#include <memory>
#include <string>

#include "common/compute/train_backend.h"
#include "common/model/weights.h"
#include "common/status.h"
#include "learner/adamw.h"

namespace treepo::learner {

struct TrainBackendOptions {
  std::string kind = "cpu";  // cpu | cuda | auto (cuda when built with it and a device is seen)
  int device = 0;            // cuda: device ordinal
};

// The device of data-parallel rank `rank` on a machine with `count` devices: ranks take
// consecutive devices from `first` on, wrapping around (`first` when there is none).
int RankDevice(int first, int rank, int count);

// A training backend owning `weights`, stepped with AdamW(`adamw`). The cpu one computes
// bit for bit what TrainModel + AdamW over the same buffers do. kInvalidArgument for an unknown
// kind or bad AdamW options, kUnimplemented / kFailedPrecondition for cuda without a CUDA
// build / device (ResolveBackend's errors).
Result<std::unique_ptr<compute::TrainBackend>> CreateTrainBackend(
    const TrainBackendOptions& options, model::ModelWeights weights, const AdamWOptions& adamw);

// A backend without an optimiser computing logp, entropy and gradients of `weights`, which the
// caller keeps (and may change, then WeightsChanged()); the cpu one reads them in place.
Result<std::unique_ptr<compute::TrainBackend>> CreateGradientBackend(
    const TrainBackendOptions& options, std::shared_ptr<const model::ModelWeights> weights);

}  // namespace treepo::learner
