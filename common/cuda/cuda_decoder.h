// The CUDA decoder backend (built when the CUDA toolkit is found): the entry points the
// backend factory (common/compute/decoder_backend.cc) calls. See docs/gpu.md.
#pragma once

#include <memory>

#include "common/compute/decoder_backend.h"

namespace treepo::cuda {

// CUDA devices visible to this process; 0 when there is no driver or no device.
int DeviceCount();

// A backend on device `device` holding `weights` (bf16 on the device) and a zeroed pool of
// `kv` pages in device memory. kFailedPrecondition for a bad device ordinal,
// kResourceExhausted when the device memory does not hold them.
Result<std::unique_ptr<compute::DecoderBackend>> CreateCudaDecoder(
    int device, std::shared_ptr<const model::ModelWeights> weights, const compute::KvShape& kv);

}  // namespace treepo::cuda
