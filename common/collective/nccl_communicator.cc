#include "common/collective/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "common/collective/nccl_id_store.h"
#include "common/log.h"

namespace treepo::collective {
namespace {

using Clock = std::chrono::steady_clock;

std::string CudaError(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

ncclDataType_t ToNccl(NcclType t) {
  switch (t) {
    case NcclType::kUint8:
      return ncclUint8;
    case NcclType::kInt32:
      return ncclInt32;
    case NcclType::kFloat32:
      return ncclFloat32;
    case NcclType::kFloat64:
      return ncclFloat64;
    case NcclType::kBFloat16:
      return ncclBfloat16;
  }
  return ncclUint8;
}

ncclRedOp_t ToNccl(NcclReduce op) { return op == NcclReduce::kSum ? ncclSum : ncclMax; }

// What the caller should do about an NCCL error: a peer or the network failing is
// kUnavailable (retry with a new communicator), a misuse is kFailedPrecondition, the rest
// kInternal.
StatusCode CodeOf(ncclResult_t r) {
  switch (r) {
    case ncclRemoteError:
    case ncclSystemError:
      return StatusCode::kUnavailable;
    case ncclInvalidArgument:
    case ncclInvalidUsage:
      return StatusCode::kFailedPrecondition;
    default:
      return StatusCode::kInternal;
  }
}

// Backs off from spinning to short sleeps: a collective on NVLink takes microseconds, a
// handshake or a dead peer seconds.
class Poll {
 public:
  void Pause() {
    if (++turns_ < 1000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

 private:
  int turns_ = 0;
};

}  // namespace

size_t NcclTypeBytes(NcclType type) {
  switch (type) {
    case NcclType::kUint8:
      return 1;
    case NcclType::kBFloat16:
      return 2;
    case NcclType::kInt32:
    case NcclType::kFloat32:
      return 4;
    case NcclType::kFloat64:
      return 8;
  }
  return 1;
}

int NcclDeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver: not sticky, but clear it anyway
    return 0;
  }
  return n;
}

std::string NcclVersionString() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "unknown";
  // NCCL_VERSION(X,Y,Z) = X*10000 + Y*100 + Z since 2.9.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

struct NcclCommunicator::Impl {
  int rank = 0;
  int world_size = 1;
  int device = 0;
  int timeout_ms = 0;
  std::string name;  // "nccl rank r/n (run_id)" for messages
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  void* staging = nullptr;  // kNcclStagingBytes at most, grown on demand
  size_t staging_bytes = 0;
  int* scratch = nullptr;  // one int for Barrier
  Status error;

  ~Impl() { Close(); }

  // Records the first failure and aborts the communicator (its peers see the connection go).
  Status Fail(Status s) {
    if (error.ok()) error = Status(s.code(), name + ": " + s.message());
    if (comm != nullptr) {
      (void)ncclCommAbort(comm);
      comm = nullptr;
    }
    return error;
  }

  Status FailNccl(ncclResult_t r, const char* what) {
    std::string detail = ncclGetErrorString(r);
    const char* last = comm != nullptr ? ncclGetLastError(comm) : ncclGetLastError(nullptr);
    if (last != nullptr && last[0] != '\0') detail += " (" + std::string(last) + ")";
    return Fail(Status(CodeOf(r), std::string(what) + ": " + detail));
  }

  Status FailCuda(cudaError_t e, const char* what) {
    return Fail(Internal(std::string(what) + ": " + CudaError(e)));
  }

  Status Usable() const {
    if (!error.ok()) return error;
    if (comm == nullptr) return FailedPrecondition(name + ": the communicator is closed");
    return OkStatus();
  }

  // Waits for the communicator's pending work (a non-blocking init or enqueue) to leave
  // ncclInProgress, up to `deadline`.
  Status WaitComm(Clock::time_point deadline, const char* what) {
    Poll poll;
    while (true) {
      ncclResult_t state = ncclSuccess;
      const ncclResult_t r = ncclCommGetAsyncError(comm, &state);
      if (r != ncclSuccess) return FailNccl(r, what);
      if (state == ncclSuccess) return OkStatus();
      if (state != ncclInProgress) return FailNccl(state, what);
      if (Clock::now() >= deadline) {
        return Fail(DeadlineExceeded(std::string(what) + ": not done after " +
                                     std::to_string(timeout_ms) + " ms"));
      }
      poll.Pause();
    }
  }

  // Waits for the stream (the collective and its copies) while watching NCCL's async error:
  // a dead peer surfaces there, or the deadline passes, instead of a hang in a sync call.
  Status WaitStream(Clock::time_point deadline, const char* what) {
    Poll poll;
    while (true) {
      const cudaError_t e = cudaStreamQuery(stream);
      if (e == cudaSuccess) return OkStatus();
      if (e != cudaErrorNotReady) return FailCuda(e, what);
      ncclResult_t state = ncclSuccess;
      const ncclResult_t r = ncclCommGetAsyncError(comm, &state);
      if (r != ncclSuccess) return FailNccl(r, what);
      if (state != ncclSuccess && state != ncclInProgress) return FailNccl(state, what);
      if (Clock::now() >= deadline) {
        return Fail(DeadlineExceeded(std::string(what) + ": not done after " +
                                     std::to_string(timeout_ms) +
                                     " ms (a peer rank is gone or "
                                     "stopped calling the same collectives)"));
      }
      poll.Pause();
    }
  }

  // Issues one collective (the enqueue may itself be in progress on a non-blocking comm).
  template <typename Issue>
  Status Enqueue(Clock::time_point deadline, const char* what, Issue&& issue) {
    const ncclResult_t r = issue();
    if (r != ncclSuccess && r != ncclInProgress) return FailNccl(r, what);
    if (r == ncclInProgress) TREEPO_RETURN_IF_ERROR(WaitComm(deadline, what));
    return OkStatus();
  }

  Status SetDevice() {
    const cudaError_t e = cudaSetDevice(device);
    return e == cudaSuccess ? OkStatus() : FailCuda(e, "cudaSetDevice");
  }

  Status EnsureStaging(size_t bytes) {
    if (bytes <= staging_bytes) return OkStatus();
    if (staging != nullptr) {
      (void)cudaFree(staging);
      staging = nullptr;
      staging_bytes = 0;
    }
    const cudaError_t e = cudaMalloc(&staging, bytes);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return Fail(ResourceExhausted("cudaMalloc of a " + std::to_string(bytes) +
                                    "-byte staging buffer: " + CudaError(e)));
    }
    staging_bytes = bytes;
    return OkStatus();
  }

  Status Collective(void* data, size_t count, NcclType type, bool all_reduce, NcclReduce op,
                    int root, const char* what) {
    TREEPO_RETURN_IF_ERROR(Usable());
    if (count == 0) return OkStatus();
    TREEPO_RETURN_IF_ERROR(SetDevice());
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    TREEPO_RETURN_IF_ERROR(Enqueue(deadline, what, [&] {
      return all_reduce ? ncclAllReduce(data, data, count, ToNccl(type), ToNccl(op), comm, stream)
                        : ncclBroadcast(data, data, count, ToNccl(type), root, comm, stream);
    }));
    return WaitStream(deadline, what);
  }

  // Host memory: piece by piece through the staging buffer. Every rank cuts the same pieces
  // (same count and type), so the collectives match.
  Status HostCollective(void* data, size_t count, NcclType type, bool all_reduce, NcclReduce op,
                        int root, const char* what) {
    TREEPO_RETURN_IF_ERROR(Usable());
    if (count == 0) return OkStatus();
    TREEPO_RETURN_IF_ERROR(SetDevice());
    const size_t elem = NcclTypeBytes(type);
    const size_t piece = std::max<size_t>(1, kNcclStagingBytes / elem);
    TREEPO_RETURN_IF_ERROR(EnsureStaging(std::min(count, piece) * elem));
    auto* bytes = static_cast<uint8_t*>(data);
    // Only the root's input matters to a broadcast; the others' staging is overwritten.
    const bool copy_in = all_reduce || rank == root;
    // ... and a broadcast leaves the root's buffer as it was: it may be read-only.
    const bool copy_out = all_reduce || rank != root;
    for (size_t begin = 0; begin < count; begin += piece) {
      const size_t n = std::min(piece, count - begin);
      uint8_t* host = bytes + begin * elem;
      const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
      if (copy_in) {
        const cudaError_t e =
            cudaMemcpyAsync(staging, host, n * elem, cudaMemcpyHostToDevice, stream);
        if (e != cudaSuccess) return FailCuda(e, "copy to the device");
      }
      TREEPO_RETURN_IF_ERROR(Enqueue(deadline, what, [&] {
        return all_reduce
                   ? ncclAllReduce(staging, staging, n, ToNccl(type), ToNccl(op), comm, stream)
                   : ncclBroadcast(staging, staging, n, ToNccl(type), root, comm, stream);
      }));
      // Wait (polled) before copying out: a copy into pageable memory blocks the host until
      // the stream's earlier work is done, which would hang on a dead peer's collective.
      TREEPO_RETURN_IF_ERROR(WaitStream(deadline, what));
      if (copy_out) {
        const cudaError_t e =
            cudaMemcpyAsync(host, staging, n * elem, cudaMemcpyDeviceToHost, stream);
        if (e != cudaSuccess) return FailCuda(e, "copy from the device");
        TREEPO_RETURN_IF_ERROR(WaitStream(deadline, what));
      }
    }
    return OkStatus();
  }

  // Finalize (flushes NCCL's work) then destroy; abort when that fails or takes too long.
  void Close() {
    if (comm != nullptr) {
      (void)cudaSetDevice(device);
      ncclResult_t r = ncclCommFinalize(comm);
      if (r == ncclSuccess || r == ncclInProgress) {
        const auto deadline = Clock::now() + std::chrono::milliseconds(std::min(timeout_ms, 10000));
        Poll poll;
        ncclResult_t state = ncclInProgress;
        while (ncclCommGetAsyncError(comm, &state) == ncclSuccess && state == ncclInProgress &&
               Clock::now() < deadline) {
          poll.Pause();
        }
        r = state;
      }
      if (r == ncclSuccess) {
        (void)ncclCommDestroy(comm);
      } else {
        (void)ncclCommAbort(comm);
      }
      comm = nullptr;
    }
    if (staging != nullptr) (void)cudaFree(staging);
    if (scratch != nullptr) (void)cudaFree(scratch);
    if (stream != nullptr) (void)cudaStreamDestroy(stream);
    staging = nullptr;
    scratch = nullptr;
    stream = nullptr;
  }
};

Result<std::vector<uint8_t>> NewNcclUniqueId() {
  ncclUniqueId id;
  static_assert(sizeof(id.internal) == NCCL_UNIQUE_ID_BYTES);
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) {
    return Status(CodeOf(r), std::string("ncclGetUniqueId: ") + ncclGetErrorString(r));
  }
  return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(id.internal),
                              reinterpret_cast<const uint8_t*>(id.internal) + NCCL_UNIQUE_ID_BYTES);
}

namespace {

// The device this rank uses, or why there is none.
Result<int> PickDevice(int rank, int device, int* n_devices) {
  const cudaError_t count_error = cudaGetDeviceCount(n_devices);
  if (count_error != cudaSuccess || *n_devices == 0) {
    (void)cudaGetLastError();
    return FailedPrecondition(
        "collective backend 'nccl' needs a CUDA device, and this process sees none (" +
        (count_error != cudaSuccess ? CudaError(count_error) : std::string("0 devices")) +
        "); use backend 'gloo' on hosts without GPUs");
  }
  if (device < 0) device = rank % *n_devices;
  if (device >= *n_devices) {
    return FailedPrecondition("collective backend 'nccl': CUDA device " + std::to_string(device) +
                              " does not exist (this process sees " + std::to_string(*n_devices) +
                              ")");
  }
  return device;
}

}  // namespace

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(const CollectiveOptions& o,
                                                                   int device) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
  if (o.world_size > 1) TREEPO_RETURN_IF_ERROR(NcclIdPath(o.store_dir, o.run_id).status());
  int n_devices = 0;
  TREEPO_ASSIGN_OR_RETURN(device, PickDevice(o.rank, device, &n_devices));
  if (o.rank != 0) {
    TREEPO_ASSIGN_OR_RETURN(std::vector<uint8_t> id,
                            WaitNcclId(o.store_dir, o.run_id, NCCL_UNIQUE_ID_BYTES, o.timeout_ms));
    return Join(o, id, device, n_devices);
  }
  TREEPO_ASSIGN_OR_RETURN(std::vector<uint8_t> id, NewNcclUniqueId());
  if (o.world_size > 1) TREEPO_RETURN_IF_ERROR(PublishNcclId(o.store_dir, o.run_id, id));
  Result<std::unique_ptr<NcclCommunicator>> joined = Join(o, id, device, n_devices);
  if (o.world_size > 1) RemoveNcclId(o.store_dir, o.run_id);  // every rank has read it, or failed
  return joined;
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::CreateWithId(
    const CollectiveOptions& o, std::span<const uint8_t> id, int device) {
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size) {
    return InvalidArgument("nccl: need 0 <= rank < world_size (rank " + std::to_string(o.rank) +
                           ", world_size " + std::to_string(o.world_size) + ")");
  }
  if (o.timeout_ms < 1) return InvalidArgument("nccl: timeout_ms must be >= 1");
  if (id.size() != NCCL_UNIQUE_ID_BYTES) {
    return InvalidArgument("nccl: a unique id is " + std::to_string(NCCL_UNIQUE_ID_BYTES) +
                           " bytes, got " + std::to_string(id.size()));
  }
  int n_devices = 0;
  TREEPO_ASSIGN_OR_RETURN(device, PickDevice(o.rank, device, &n_devices));
  return Join(o, id, device, n_devices);
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Join(const CollectiveOptions& o,
                                                                 std::span<const uint8_t> id_bytes,
                                                                 int device, int n_devices) {
  auto impl = std::make_unique<Impl>();
  impl->rank = o.rank;
  impl->world_size = o.world_size;
  impl->device = device;
  impl->timeout_ms = o.timeout_ms;
  impl->name = "nccl rank " + std::to_string(o.rank) + "/" + std::to_string(o.world_size) +
               " (run_id '" + o.run_id + "', device " + std::to_string(device) + ")";
  TREEPO_RETURN_IF_ERROR(impl->SetDevice());
  ncclUniqueId id;
  std::memcpy(id.internal, id_bytes.data(), NCCL_UNIQUE_ID_BYTES);

  // Non-blocking: the handshake returns at once and is polled with a deadline, so a rank that
  // never comes gives an error instead of a hang.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const auto deadline = Clock::now() + std::chrono::milliseconds(o.timeout_ms);
  const ncclResult_t r = ncclCommInitRankConfig(&impl->comm, o.world_size, id, o.rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    return impl->FailNccl(r, "ncclCommInitRankConfig (every rank must join the same run_id)");
  }
  if (impl->comm == nullptr) return Internal(impl->name + ": ncclCommInitRankConfig gave no comm");
  Status joined = impl->WaitComm(deadline, "joining the communicator");
  if (!joined.ok() && joined.code() == StatusCode::kFailedPrecondition &&
      n_devices < o.world_size) {
    joined = Status(joined.code(), joined.message() +
                                       " (NCCL refuses two ranks on one GPU of one host; this "
                                       "process sees " +
                                       std::to_string(n_devices) + " device(s) for " +
                                       std::to_string(o.world_size) + " ranks)");
  }
  TREEPO_RETURN_IF_ERROR(joined);

  cudaError_t e = cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) return impl->FailCuda(e, "cudaStreamCreate");
  e = cudaMalloc(reinterpret_cast<void**>(&impl->scratch), sizeof(int));
  if (e != cudaSuccess) return impl->FailCuda(e, "cudaMalloc (barrier scratch)");
  spdlog::info("{}: joined (NCCL {})", impl->name, NcclVersionString());
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(impl)));
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NcclCommunicator::~NcclCommunicator() = default;

int NcclCommunicator::rank() const { return impl_->rank; }
int NcclCommunicator::world_size() const { return impl_->world_size; }
int NcclCommunicator::device() const { return impl_->device; }
const Status& NcclCommunicator::error() const { return impl_->error; }

Status NcclCommunicator::AllReduceDevice(void* data, size_t count, NcclType type, NcclReduce op) {
  return impl_->Collective(data, count, type, true, op, 0, "all-reduce");
}

Status NcclCommunicator::BroadcastDevice(void* data, size_t count, NcclType type, int root) {
  if (root < 0 || root >= impl_->world_size) return InvalidArgument("broadcast root out of range");
  return impl_->Collective(data, count, type, false, NcclReduce::kSum, root, "broadcast");
}

Status NcclCommunicator::AllReduceHost(void* data, size_t count, NcclType type, NcclReduce op) {
  return impl_->HostCollective(data, count, type, true, op, 0, "all-reduce");
}

Status NcclCommunicator::BroadcastHost(void* data, size_t count, NcclType type, int root) {
  if (root < 0 || root >= impl_->world_size) return InvalidArgument("broadcast root out of range");
  return impl_->HostCollective(data, count, type, false, NcclReduce::kSum, root, "broadcast");
}

Status NcclCommunicator::Abort(Status why) { return impl_->Fail(std::move(why)); }

Status NcclCommunicator::Barrier() {
  TREEPO_RETURN_IF_ERROR(impl_->Usable());
  TREEPO_RETURN_IF_ERROR(impl_->SetDevice());
  const cudaError_t e = cudaMemsetAsync(impl_->scratch, 0, sizeof(int), impl_->stream);
  if (e != cudaSuccess) return impl_->FailCuda(e, "cudaMemsetAsync (barrier)");
  return impl_->Collective(impl_->scratch, 1, NcclType::kInt32, true, NcclReduce::kSum, 0,
                           "barrier");
}

}  // namespace treepo::collective
