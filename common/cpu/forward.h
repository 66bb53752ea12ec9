// The fp32 CPU forward pass of the Llama-family decoder over a ragged batch with paged KV.
//
// One call runs every row of every sequence in the batch: rows of all sequences are
// concatenated, each linear layer is one matrix product over all rows, and attention runs row
// by row through the row's sequence's block table. A sequence contributes `num_rows` consecutive
// tokens starting at position `start_pos` (a prefill chunk, or one decode token); its K and V for
// those positions are written into its pages, and its rows attend to positions
// [0, start_pos + i]. Positions before start_pos must already be in the pages.
//
// Batch invariance: a row's output (its logits, and the K and V it writes) is a function of
// its token, its position and the KV of its prefix alone, bitwise. It does not depend on the
// other rows of the batch, on the row's place in it, on whether the prefix was prefilled in
// one chunk, in several, decoded token by token or forked, on the page size, nor on the
// thread count. Every step that reduces over a row does so in one fixed order: the linear
// layers through FixedOrderMatMulWt (never BLAS), one attention routine for prefill and decode
// rows, and per-row RMSNorm, RoPE, SiLU and softmax. Sampling from the same logits with the
// same stream thus gives the same tokens and log-probs wherever and with whatever the row is
// batched. (The learner's training forward uses BLAS and need not match bitwise.)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/compute/decoder_backend.h"
#include "common/cpu/kv_view.h"
#include "common/model/weights.h"

namespace treepo::cpu {

// The batch and the statistics are the backend seam's (common/compute/decoder_backend.h).
using SeqSlice = compute::SeqSlice;
using ForwardBatch = compute::ForwardBatch;
using ForwardStats = compute::ForwardStats;

// Scratch buffers reused across calls; they only grow, so a steady-state step allocates
// nothing. One workspace per thread.
class ForwardWorkspace {
 public:
  // Grows the buffers for `rows` rows and contexts up to `max_context` positions.
  void Reserve(const model::ModelConfig& c, int rows, int max_context);

 private:
  friend void Forward(const model::ModelWeights&, const KvView&, const ForwardBatch&,
                      ForwardWorkspace*, float*, ForwardStats*);
  std::vector<float> x_, xb_, q_, k_, v_, att_, hb_, hb2_, scores_, final_;
  std::vector<int32_t> positions_, row_seq_;  // per row: position, index into seqs
};

// Runs the batch. `logits`: [logit_rows.size(), vocab] output. `stats` may be null.
// Preconditions (CHECKed): kv matches the model's layers and kv_dim, tokens are in the
// vocabulary, rows add up, block tables cover every position touched.
void Forward(const model::ModelWeights& w, const KvView& kv, const ForwardBatch& batch,
             ForwardWorkspace* ws, float* logits, ForwardStats* stats = nullptr);

}  // namespace treepo::cpu
