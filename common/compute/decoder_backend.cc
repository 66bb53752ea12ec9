#include "common/compute/decoder_backend.h"

#include <string>

#include "common/compute/cpu_decoder.h"
#ifdef TREEPO_HAVE_CUDA
#include "common/cuda/cuda_decoder.h"
#endif

namespace treepo::compute {

std::vector<std::string_view> DecoderBackends() {
#ifdef TREEPO_HAVE_CUDA
  return {"cpu", "cuda"};
#else
  return {"cpu"};
#endif
}

int CudaDeviceCount() {
#ifdef TREEPO_HAVE_CUDA
  return cuda::DeviceCount();
#else
  return 0;
#endif
}

Status CheckBackendName(std::string_view key, std::string_view name) {
  if (name == "cpu" || name == "cuda" || name == "auto") return OkStatus();
  return InvalidArgument(std::string(key) + " must be cpu, cuda or auto: unknown backend '" +
                         std::string(name) + "'");
}

Result<std::string> ResolveBackend(std::string_view kind) {
#ifdef TREEPO_HAVE_CUDA
  constexpr bool kBuilt = true;
#else
  constexpr bool kBuilt = false;
#endif
  if (kind == "cpu") return std::string("cpu");
  if (kind == "auto") return std::string(kBuilt && CudaDeviceCount() > 0 ? "cuda" : "cpu");
  if (kind == "cuda") {
    if (!kBuilt) {
      return Unimplemented(
          "backend 'cuda': this build has no CUDA backend (the CUDA toolkit was not found when "
          "it was configured)");
    }
    if (CudaDeviceCount() == 0) {
      return FailedPrecondition("backend 'cuda': no CUDA device is visible to this process");
    }
    return std::string("cuda");
  }
  return InvalidArgument("unknown backend '" + std::string(kind) + "' (cpu | cuda | auto)");
}

Result<std::unique_ptr<DecoderBackend>> CreateDecoderBackend(
    const DecoderBackendOptions& options, std::shared_ptr<const model::ModelWeights> weights,
    const KvShape& kv) {
  TREEPO_ASSIGN_OR_RETURN(const std::string kind, ResolveBackend(options.kind));
  if (weights == nullptr) return InvalidArgument("backend: no weights");
  if (kv.n_layers != weights->config.n_layers || kv.kv_dim != weights->config.kv_dim() ||
      kv.num_pages < 1 || kv.page_size < 1) {
    return InvalidArgument("backend: the KV shape does not match the model");
  }
#ifdef TREEPO_HAVE_CUDA
  if (kind == "cuda") return cuda::CreateCudaDecoder(options.device, std::move(weights), kv);
#endif
  return CreateCpuDecoder(std::move(weights), kv);
}

}  // namespace treepo::compute
