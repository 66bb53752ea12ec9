// The compute-backend seam of the inference engine: where a worker's weights and KV pages live,
// and what runs one forward pass over a mixed prefill/decode batch.
//
// The engine (worker/engine) keeps every piece of bookkeeping (which page belongs to which
// node, reference counts, copy-on-write decisions, sampling streams) and hands a backend only
// data movement and arithmetic. Two backends implement it:
//   cpu   fp32, batch-invariant (common/cpu/forward.h): the reference, what CI runs;
//   cuda  bf16 weights on the device, cuBLAS GEMMs, our kernels, KV pages in device memory
//         (common/cuda/); built when the CUDA toolkit is found, runs where a device is.
// A backend is chosen by name: "cpu", "cuda", or "auto" (cuda when this build has it and a
// device is present, else cpu).
//
// Thread-safety: none. The engine's thread owns its backend; a backend may run its own helper
// threads (or device streams) inside a call and has finished with them when the call returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/model/weights.h"
#include "common/status.h"

namespace treepo::compute {

// The shape of a KV page pool: per layer K and V, each [num_pages, page_size, kv_dim].
struct KvShape {
  int n_layers = 0;
  int num_pages = 0;
  int page_size = 0;  // positions per page
  int kv_dim = 0;     // n_kv_heads * head_dim

  // Floats of one page over every layer (its K rows, then its V rows): the unit of Read/Write.
  size_t page_floats() const { return size_t{2} * n_layers * page_size * kv_dim; }
};

// The storage of a paged KV pool on one device. Pages are addressed by index; which page is
// whose is the caller's business. A fresh pool reads as zeros.
class KvPages {
 public:
  virtual ~KvPages() = default;
  virtual const KvShape& shape() const = 0;
  // Copies positions [0, rows) of page `from` into page `to`, in every layer's K and V (the
  // copy-on-write of a parent's partial last page into a child's own page).
  virtual void CopyRows(int32_t from, int32_t to, int rows) = 0;
  // The whole page as fp32, out[shape().page_floats()]: layer 0..n-1 K rows, then their V rows
  // (the migration format; a bf16 pool widens on the way out and rounds on the way in).
  virtual void Read(int32_t page, float* out) const = 0;
  virtual void Write(int32_t page, const float* in) = 0;
};

// One sequence's part of a batch: `num_rows` consecutive tokens starting at position
// `start_pos` (a prefill chunk, or one decode token). Its K and V for those positions are
// written into its pages; its rows attend to positions [0, start_pos + i].
struct SeqSlice {
  std::span<const int32_t> block_table;  // pages covering [0, start_pos + num_rows)
  int start_pos = 0;                     // position of the first row
  int num_rows = 0;                      // >= 1
};

struct ForwardBatch {
  std::span<const int32_t> tokens;  // [total rows]: the sequences' rows, in `seqs` order
  std::span<const SeqSlice> seqs;
  std::span<const int32_t> logit_rows;  // rows (indices into tokens) whose logits are wanted
};

// Work done in matrix products, accumulated over calls (benchmarks).
struct ForwardStats {
  double matmul_seconds = 0.0;
  double matmul_flops = 0.0;
};

class DecoderBackend {
 public:
  virtual ~DecoderBackend() = default;
  virtual std::string_view name() const = 0;  // "cpu" | "cuda"
  virtual KvPages& kv() = 0;
  virtual const KvPages& kv() const = 0;

  // Replaces the weights (between forwards). kInvalidArgument when the config's shape differs
  // from the current weights'.
  virtual Status SetWeights(std::shared_ptr<const model::ModelWeights> weights) = 0;

  // Runs the batch: writes K and V of every row into the rows' pages and the fp32 logits of
  // `logit_rows` into host memory, logits[logit_rows.size(), vocab]. Preconditions (CHECKed):
  // tokens in the vocabulary, rows add up, block tables cover every position touched, and no
  // page written is shared with another sequence.
  virtual void Forward(const ForwardBatch& batch, float* logits) = 0;
  virtual ForwardStats stats() const = 0;
};

struct DecoderBackendOptions {
  std::string kind = "cpu";  // cpu | cuda | auto
  int device = 0;            // cuda: device ordinal
};

// kInvalidArgument "<key> must be cpu, cuda or auto: unknown backend '<name>'" for any other. A
// name check only: whether cuda can be had here is ResolveBackend's question (for a setting that
// other hosts' processes resolve, or a check before anything is created).
Status CheckBackendName(std::string_view key, std::string_view name);

// Backends this build has ("cpu", and "cuda" in a CUDA build).
std::vector<std::string_view> DecoderBackends();
// CUDA devices visible to this process (0 in a build without CUDA, or without a driver).
int CudaDeviceCount();
// "auto" resolved: "cuda" when built with it and a device is present, else "cpu". Other names
// are returned as given once known: kInvalidArgument for an unknown name, kUnimplemented for
// cuda in a build without it, kFailedPrecondition for cuda without a device.
Result<std::string> ResolveBackend(std::string_view kind);

// A backend holding `weights` (validated, complete) and a zeroed pool of `kv` pages.
// kResourceExhausted when the device cannot hold them.
Result<std::unique_ptr<DecoderBackend>> CreateDecoderBackend(
    const DecoderBackendOptions& options, std::shared_ptr<const model::ModelWeights> weights,
    const KvShape& kv);

}  // namespace treepo::compute
