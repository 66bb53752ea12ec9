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

// A named fp32 tensor, as read from or written to a safetensors file.
struct NamedTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// "[2,3]".
std::string ShapeToString(const std::vector<int64_t>& shape);

// Writes tensors (F32) with optional string metadata.
Status SaveSafetensors(const std::string& path, const std::map<std::string, NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// Reads every tensor (F32, F16 and BF16 are converted to fp32). Header, offsets and sizes are
// validated against the file; anything inconsistent is refused with kDataLoss.
Result<std::map<std::string, NamedTensor>> LoadSafetensors(
    const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

// config.json in the Llama / Qwen2 schema (hidden_size, intermediate_size, num_hidden_layers,
// num_attention_heads, num_key_value_heads, vocab_size, max_position_embeddings, rope_theta,
// rms_norm_eps, tie_word_embeddings, attention_bias, bos/eos_token_id) plus a
// "treepo_rope_layout" key ("adjacent" | "half"; absent means "half", as in HF). Absent
// optional keys take LlamaConfig's defaults (kv heads = heads, 2048 positions, theta 10000,
// eps 1e-6, untied); model_type "qwen2" implies q/k/v biases. rope_scaling and a head_dim other
// than hidden/heads are refused as unsupported. Malformed JSON is kDataLoss, a bad or
// inconsistent value kInvalidArgument. SaveHfConfig writes model_type "qwen2" when the model has
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
Result<ModelWeights> LoadHfModel(const std::string& dir);
Status SaveHfModel(const ModelWeights& weights, const std::string& dir);

// Loads whatever `path` is: a directory (HF layout) or a llama2.c .bin file (kNotFound when it
// does not exist, kInvalidArgument for any other file).
Result<ModelWeights> LoadModel(const std::string& path);

// The config of the model at `path` (as LoadModel reads it), for estimates made before the
// model is loaded. Reads only config.json for a directory.
Result<ModelConfig> LoadModelConfig(const std::string& path);

}  // namespace treepo::model
