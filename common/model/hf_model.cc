// Hugging Face model directories: config.json plus model.safetensors (or shards listed in
// model.safetensors.index.json), declared in safetensors.h.
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "common/atomic_file.h"
#include "common/file_io.h"
#include "common/json_file.h"
#include "common/model/llama2c.h"
#include "common/model/safetensors.h"

namespace treepo::model {
namespace {

namespace fs = std::filesystem;

// Reads an integer field into `out`; absent leaves `out` unchanged unless `required`.
Status GetInt(const nlohmann::json& j, const char* key, bool required, int* out) {
  if (!j.contains(key) || j[key].is_null()) {
    return required ? InvalidArgument(std::string("missing \"") + key + "\"") : OkStatus();
  }
  const nlohmann::json* v = &j[key];
  // Llama 3 lists several eos ids; the first is the one generation stops on by default.
  if (v->is_array() && !v->empty()) v = &(*v)[0];
  if (!v->is_number_integer() || v->get<int64_t>() < INT32_MIN || v->get<int64_t>() > INT32_MAX) {
    return InvalidArgument(std::string("\"") + key + "\" must be an integer");
  }
  *out = static_cast<int>(v->get<int64_t>());
  return OkStatus();
}

Status GetFloat(const nlohmann::json& j, const char* key, float* out) {
  if (!j.contains(key) || j[key].is_null()) return OkStatus();
  if (!j[key].is_number() || !std::isfinite(j[key].get<float>())) {
    return InvalidArgument(std::string("\"") + key + "\" must be a finite number");
  }
  *out = j[key].get<float>();
  return OkStatus();
}

Status GetBool(const nlohmann::json& j, const char* key, bool* out) {
  if (!j.contains(key) || j[key].is_null()) return OkStatus();
  if (!j[key].is_boolean()) return InvalidArgument(std::string("\"") + key + "\" must be a bool");
  *out = j[key].get<bool>();
  return OkStatus();
}

Status ParseConfig(const nlohmann::json& j, ModelConfig* c) {
  TREEPO_RETURN_IF_ERROR(GetInt(j, "hidden_size", true, &c->dim));
  TREEPO_RETURN_IF_ERROR(GetInt(j, "intermediate_size", true, &c->hidden_dim));
  TREEPO_RETURN_IF_ERROR(GetInt(j, "num_hidden_layers", true, &c->n_layers));
  TREEPO_RETURN_IF_ERROR(GetInt(j, "num_attention_heads", true, &c->n_heads));
  c->n_kv_heads = c->n_heads;
  TREEPO_RETURN_IF_ERROR(GetInt(j, "num_key_value_heads", false, &c->n_kv_heads));
  TREEPO_RETURN_IF_ERROR(GetInt(j, "vocab_size", true, &c->vocab_size));
  c->max_seq_len = 2048;  // LlamaConfig's default
  TREEPO_RETURN_IF_ERROR(GetInt(j, "max_position_embeddings", false, &c->max_seq_len));
  c->rope_theta = 10000.0f;
  TREEPO_RETURN_IF_ERROR(GetFloat(j, "rope_theta", &c->rope_theta));
  c->norm_eps = 1e-6f;  // LlamaConfig's default
  TREEPO_RETURN_IF_ERROR(GetFloat(j, "rms_norm_eps", &c->norm_eps));
  c->tied_embeddings = false;
  TREEPO_RETURN_IF_ERROR(GetBool(j, "tie_word_embeddings", &c->tied_embeddings));
  // Qwen2 always has q/k/v biases and no attention_bias key.
  c->qkv_bias = j.value("model_type", nlohmann::json("")) == "qwen2";
  TREEPO_RETURN_IF_ERROR(GetBool(j, "attention_bias", &c->qkv_bias));
  TREEPO_RETURN_IF_ERROR(GetInt(j, "bos_token_id", false, &c->bos_id));
  TREEPO_RETURN_IF_ERROR(GetInt(j, "eos_token_id", false, &c->eos_id));
  c->rope_layout = RopeLayout::kRotateHalf;
  if (j.contains("treepo_rope_layout")) {
    const nlohmann::json& v = j["treepo_rope_layout"];
    if (v == "adjacent") {
      c->rope_layout = RopeLayout::kAdjacentPairs;
    } else if (v != "half") {
      return InvalidArgument("\"treepo_rope_layout\" must be \"adjacent\" or \"half\"");
    }
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    return InvalidArgument("\"rope_scaling\" is not supported");
  }
  if (j.contains("head_dim") && !j["head_dim"].is_null() && c->n_heads > 0 &&
      j["head_dim"] != c->dim / c->n_heads) {
    return InvalidArgument("\"head_dim\" other than hidden_size / num_attention_heads");
  }
  return c->Validate();
}

Status CheckFinite(const ModelWeights& w) {
  for (const TensorInfo& t : w.layout.tensors()) {
    const float* p = w.at(t.offset);
    for (size_t i = 0; i < t.numel; ++i) {
      if (!std::isfinite(p[i])) {
        return DataLoss("tensor " + t.name + " has a non-finite value at element " +
                        std::to_string(i));
      }
    }
  }
  return OkStatus();
}

// Every tensor of the directory: model.safetensors, or the shards of the index.
Result<std::map<std::string, NamedTensor>> LoadDirTensors(const fs::path& dir) {
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(single, ec) || !fs::exists(index, ec)) return LoadSafetensors(single.string());
  TREEPO_ASSIGN_OR_RETURN(nlohmann::json j, ReadJsonObjectFile(index.string()));
  if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
    return DataLoss(index.string() + ": no \"weight_map\" object");
  }
  std::set<std::string> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos) {
      return DataLoss(index.string() + ": bad shard file name for " + name);
    }
    shards.insert(file.get<std::string>());
  }
  std::map<std::string, NamedTensor> all;
  for (const std::string& shard : shards) {
    TREEPO_ASSIGN_OR_RETURN(auto part, LoadSafetensors((dir / shard).string()));
    for (auto& [name, t] : part) {
      if (!all.emplace(name, std::move(t)).second) {
        return DataLoss(index.string() + ": tensor " + name + " is in two shards");
      }
    }
  }
  return all;
}

}  // namespace

Result<ModelConfig> LoadHfConfig(const std::string& path) {
  TREEPO_ASSIGN_OR_RETURN(nlohmann::json j, ReadJsonObjectFile(path));
  ModelConfig c;
  if (Status s = ParseConfig(j, &c); !s.ok()) return s.WithContext(path);
  return c;
}

Status SaveHfConfig(const ModelConfig& c, const std::string& path) {
  TREEPO_RETURN_IF_ERROR(c.Validate());
  // A model with q/k/v biases is a Qwen2 model to `transformers` (Llama's attention_bias
  // would also add an o_proj bias).
  const bool qwen2 = c.qkv_bias;
  nlohmann::ordered_json j;
  j["architectures"] = {qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = qwen2 ? "qwen2" : "llama";
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.norm_eps;
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["attention_bias"] = c.qkv_bias;
  j["bos_token_id"] = c.bos_id;
  j["eos_token_id"] = c.eos_id;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  j["treepo_rope_layout"] = c.rope_layout == RopeLayout::kAdjacentPairs ? "adjacent" : "half";
  return WriteFileAtomically(path, j.dump(2) + "\n");
}

Result<ModelWeights> LoadHfModel(const std::string& dir) {
  const fs::path d(dir);
  TREEPO_ASSIGN_OR_RETURN(ModelConfig config, LoadHfConfig((d / "config.json").string()));
  TREEPO_RETURN_IF_ERROR(CheckWeightsFitMemory(config));
  TREEPO_ASSIGN_OR_RETURN(auto tensors, LoadDirTensors(d));
  TREEPO_ASSIGN_OR_RETURN(ModelWeights w, ModelWeights::Zeros(config));
  const std::string where = "model " + dir + ": ";
  for (const TensorInfo& info : w.layout.tensors()) {
    auto it = tensors.find(info.name);
    if (it == tensors.end()) {
      return DataLoss(where + "missing tensor " + info.name + " (config " + config.ToString() +
                      ")");
    }
    if (it->second.shape != info.shape) {
      return DataLoss(where + "tensor " + info.name + " has shape " +
                      ShapeToString(it->second.shape) + " but the config implies " +
                      ShapeToString(info.shape));
    }
    std::copy(it->second.data.begin(), it->second.data.end(), w.at(info.offset));
    tensors.erase(it);
  }
  // Weights of layers past the config's count mean the config describes another model:
  // running it would silently drop layers and produce garbage.
  int weight_layers = config.n_layers;
  for (const auto& [name, t] : tensors) {
    int layer = -1;
    if (std::sscanf(name.c_str(), "model.layers.%d.", &layer) == 1 && layer >= weight_layers) {
      weight_layers = layer + 1;
    }
  }
  if (weight_layers != config.n_layers) {
    return InvalidArgument(
        where + "config.json says num_hidden_layers = " + std::to_string(config.n_layers) +
        " but the weights hold " + std::to_string(weight_layers) + " layers");
  }
  if (!tensors.empty()) {
    spdlog::warn("{}ignoring {} tensor(s) the config does not use, e.g. {}", where, tensors.size(),
                 tensors.begin()->first);
  }
  if (Status s = CheckFinite(w); !s.ok()) return s.WithContext(where);
  return w;
}

Status SaveHfModel(const ModelWeights& weights, const std::string& dir) {
  if (weights.data.size() != weights.layout.total()) {
    return InvalidArgument("weights hold " + std::to_string(weights.data.size()) +
                           " floats, layout needs " + std::to_string(weights.layout.total()));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return NotFound("cannot create directory " + dir + ": " + ec.message());
  TREEPO_RETURN_IF_ERROR(SaveHfConfig(weights.config, (fs::path(dir) / "config.json").string()));
  std::map<std::string, NamedTensor> tensors;
  for (const TensorInfo& t : weights.layout.tensors()) {
    tensors[t.name] = NamedTensor{
        t.shape, std::vector<float>(weights.at(t.offset), weights.at(t.offset) + t.numel)};
  }
  return SaveSafetensors((fs::path(dir) / "model.safetensors").string(), tensors,
                         {{"format", "pt"}});
}

Result<ModelWeights> LoadModel(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return NotFound("model path " + path + " does not exist");
  if (fs::is_directory(st)) return LoadHfModel(path);
  if (fs::path(path).extension() == ".bin") return LoadLlama2cCheckpoint(path);
  return InvalidArgument("model path " + path +
                         ": expected a Hugging Face model directory or a llama2.c .bin file");
}

Result<ModelConfig> LoadModelConfig(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return LoadHfConfig((fs::path(path) / "config.json").string());
  TREEPO_ASSIGN_OR_RETURN(ModelWeights w, LoadModel(path));
  return w.config;
}

}  // namespace treepo::model
