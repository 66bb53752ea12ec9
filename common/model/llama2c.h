// llama2.c checkpoints (see ../shared/models/stories260K/README.md for the format).
#pragma once

#include <string>

#include "common/model/weights.h"
#include "common/status.h"

namespace treepo::model {

// Loads a llama2.c checkpoint. RoPE layout is adjacent pairs; a positive vocab_size in the
// header means tied embeddings, a negative one a separate classifier at the end. The file size
// must equal the size the header implies exactly; a truncated, oversized or otherwise corrupt
// file is refused with kDataLoss / kInvalidArgument and a message saying what is wrong, as is
// a non-finite weight. Only the legacy (unversioned) export is read; freq_cis is skipped, and
// max_seq_len is the header's seq_len.
Result<ModelWeights> LoadLlama2cCheckpoint(const std::string& path);

// Writes `weights` in llama2.c format (adjacent-pair RoPE and no QKV bias required).
Status SaveLlama2cCheckpoint(const ModelWeights& weights, const std::string& path);

}  // namespace treepo::model
