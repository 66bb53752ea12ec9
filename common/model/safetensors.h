// Hugging Face formats: safetensors files and config.json, for checkpoints that common tools
// read (`transformers`, `safetensors`).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/model/weights.h"
#include "common/status.h"

namespace treepo::model {

// A named tensor, as read from or written to a safetensors file: fp32 in `data`, or (read with
// keep_16bit) a BF16/F16 tensor's raw elements in `half`.
struct NamedTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  WeightDtype dtype = WeightDtype::kF32;
  std::vector<uint16_t> half;
};

// "[2,3]".
std::string ShapeToString(const std::vector<int64_t>& shape);

// Writes tensors (F32, or BF16/F16 for a NamedTensor with that dtype) with optional string
// metadata.
Status SaveSafetensors(const std::string& path, const std::map<std::string, NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// Reads every tensor (F32, F16 and BF16 are converted to fp32, unless `keep_16bit`: then F16
// and BF16 tensors keep their elements in NamedTensor::half). Header, offsets and sizes are
// validated against the file; anything inconsistent is refused with kDataLoss.
Result<std::map<std::string, NamedTensor>> LoadSafetensors(
    const std::string& path, std::map<std::string, std::string>* metadata = nullptr,
    bool keep_16bit = false);

// config.json of model_type llama, qwen2 or qwen3 (hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, vocab_size,
// max_position_embeddings, rope_theta, rope_scaling (linear, llama3, yarn), rms_norm_eps,
// tie_word_embeddings, bos/eos_token_id, eos_token_id lists) plus a "treepo_rope_layout" key
// ("adjacent" | "half"; absent means "half", as in HF). Absent optional keys take LlamaConfig's
// defaults (kv heads = heads, 2048 positions, theta 10000, eps 1e-6, untied); "qwen2" implies
// q/k/v biases, "qwen3" per-head q/k norms. Keys that do not change the computation are
// ignored; any other key or value the model cannot honour is refused, naming it (docs/models.md).
// generation_config.json's eos_token_id and tokenizer_config.json's eos_token beside
// config.json add end-of-generation ids. Malformed JSON is kDataLoss, a bad or inconsistent
// value kInvalidArgument. SaveHfConfig writes model_type "qwen3" for q/k norms, "qwen2" for
// q/k/v biases, else "llama".
Result<ModelConfig> LoadHfConfig(const std::string& path);
Status SaveHfConfig(const ModelConfig& config, const std::string& path);

// A model directory: config.json + model.safetensors (tensor names from ParamLayout; a tied
// model has no lm_head.weight). Loading also accepts shards listed in
// model.safetensors.index.json; a missing or mis-shaped tensor or a non-finite weight is
// kDataLoss naming the tensor; weights of more layers than the config's num_hidden_layers
// are kInvalidArgument (the config describes another model); other tensors the config does not
// use are ignored with a warning. The weights' memory is checked (CheckWeightsFitMemory)
// before any tensor is read.
//
// `keep_16bit` (inference): when every matrix of the checkpoint is BF16 (or every one F16),
// the weights stay in that type (ModelWeights::dtype), half the memory of fp32; otherwise they
// are widened to fp32.
Result<ModelWeights> LoadHfModel(const std::string& dir, bool keep_16bit = false);
// Tensors are written in the weights' dtype (F32, or BF16/F16 for 16-bit weights).
Status SaveHfModel(const ModelWeights& weights, const std::string& dir);

// The type a worker keeps the model at `path` in (LoadModel with keep_16bit): BF16 or F16
// when every 2-D tensor of the checkpoint has that type, else F32 (also for llama2.c files).
// Reads only the safetensors headers; for memory estimates before loading.
Result<WeightDtype> StoredWeightDtype(const std::string& path);

// Loads whatever `path` is: a directory (HF layout) or a llama2.c .bin file (kNotFound when it
// does not exist, kInvalidArgument for any other file).
Result<ModelWeights> LoadModel(const std::string& path, bool keep_16bit = false);

// The config of the model at `path` (as LoadModel reads it), for estimates made before the
// model is loaded. Reads only config.json for a directory.
Result<ModelConfig> LoadModelConfig(const std::string& path);

}  // namespace treepo::model
