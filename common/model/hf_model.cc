// Hugging Face model directories: config.json plus model.safetensors (or shards listed in
// model.safetensors.index.json), declared in safetensors.h.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
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
  const nlohmann::json& v = j[key];
  if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX) {
    return InvalidArgument(std::string("\"") + key + "\" must be an integer");
  }
  *out = static_cast<int>(v.get<int64_t>());
  return OkStatus();
}

// eos_token_id: an integer or a list of them (Llama 3.1: [128001, 128008, 128009]). Appends
// them to `ids`; absent adds nothing.
Status GetIdList(const nlohmann::json& j, const char* key, std::vector<int>* ids) {
  if (!j.contains(key) || j[key].is_null()) return OkStatus();
  const nlohmann::json& v = j[key];
  const auto bad = InvalidArgument(std::string("\"") + key +
                                   "\" must be an integer or a non-empty list of integers");
  std::vector<nlohmann::json> items;
  if (v.is_array()) {
    if (v.empty()) return bad;
    items.assign(v.begin(), v.end());
  } else {
    items.push_back(v);
  }
  for (const nlohmann::json& x : items) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX) return bad;
    const int id = static_cast<int>(x.get<int64_t>());
    if (std::find(ids->begin(), ids->end(), id) == ids->end()) ids->push_back(id);
  }
  return OkStatus();
}

template <typename T>
Status GetFloat(const nlohmann::json& j, const char* key, T* out) {
  if (!j.contains(key) || j[key].is_null()) return OkStatus();
  if (!j[key].is_number() || !std::isfinite(j[key].get<double>())) {
    return InvalidArgument(std::string("\"") + key + "\" must be a finite number");
  }
  *out = static_cast<T>(j[key].get<double>());
  return OkStatus();
}

Status GetBool(const nlohmann::json& j, const char* key, bool* out) {
  if (!j.contains(key) || j[key].is_null()) return OkStatus();
  if (!j[key].is_boolean()) return InvalidArgument(std::string("\"") + key + "\" must be a bool");
  *out = j[key].get<bool>();
  return OkStatus();
}

// Keys that do not change the computation: metadata, training-only settings, and those that
// only matter when another (checked) key enables them.
const std::set<std::string>& IgnoredKeys() {
  static const std::set<std::string> keys = {"_name_or_path",
                                             "architectures",
                                             "transformers_version",
                                             "torch_dtype",
                                             "dtype",
                                             "use_cache",
                                             "initializer_range",
                                             "attention_dropout",
                                             "pad_token_id",
                                             "max_window_layers",
                                             "sliding_window",
                                             "pretraining_tp",
                                             "output_attentions",
                                             "output_hidden_states",
                                             "return_dict",
                                             "is_encoder_decoder",
                                             "tokenizer_class",
                                             "bos_token_id",
                                             "eos_token_id",
                                             "model_type",
                                             "hidden_act",
                                             "use_sliding_window",
                                             "mlp_bias",
                                             "layer_types",
                                             "attention_bias",
                                             "head_dim",
                                             "rope_scaling",
                                             "treepo_rope_layout"};
  return keys;
}

// Keys this model handles.
const std::set<std::string>& UsedKeys() {
  static const std::set<std::string> keys = {
      "hidden_size",         "intermediate_size",  "num_hidden_layers",       "num_attention_heads",
      "num_key_value_heads", "vocab_size",         "max_position_embeddings", "rope_theta",
      "rms_norm_eps",        "tie_word_embeddings"};
  return keys;
}

Status ParseRopeScaling(const nlohmann::json& j, ModelConfig* c) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return OkStatus();
  const nlohmann::json& r = j["rope_scaling"];
  if (!r.is_object()) return InvalidArgument("\"rope_scaling\" must be an object or null");
  std::string type;
  for (const char* k : {"rope_type", "type"}) {
    if (r.contains(k) && r[k].is_string()) {
      type = r[k].get<std::string>();
      break;
    }
  }
  RopeScaling& rs = c->rope_scaling;
  std::set<std::string> allowed = {"rope_type", "type"};
  if (type == "default") {
    return OkStatus();
  } else if (type == "linear") {
    rs.type = RopeScalingType::kLinear;
    allowed.insert("factor");
  } else if (type == "llama3") {
    rs.type = RopeScalingType::kLlama3;
    allowed.insert(
        {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"});
  } else if (type == "yarn") {
    rs.type = RopeScalingType::kYarn;
    allowed.insert({"factor", "original_max_position_embeddings", "beta_fast", "beta_slow",
                    "attention_factor", "mscale", "mscale_all_dim", "truncate"});
  } else {
    return InvalidArgument("\"rope_scaling\" type \"" + type +
                           "\" is not supported (supported: linear, llama3, yarn)");
  }
  for (const auto& [k, v] : r.items()) {
    if (!allowed.contains(k)) {
      return InvalidArgument("\"rope_scaling\" key \"" + k + "\" is not supported for type " +
                             type);
    }
  }
  if (!r.contains("factor")) return InvalidArgument("\"rope_scaling\" needs \"factor\"");
  TREEPO_RETURN_IF_ERROR(GetFloat(r, "factor", &rs.factor));
  TREEPO_RETURN_IF_ERROR(GetFloat(r, "low_freq_factor", &rs.low_freq_factor));
  TREEPO_RETURN_IF_ERROR(GetFloat(r, "high_freq_factor", &rs.high_freq_factor));
  TREEPO_RETURN_IF_ERROR(GetFloat(r, "beta_fast", &rs.beta_fast));
  TREEPO_RETURN_IF_ERROR(GetFloat(r, "beta_slow", &rs.beta_slow));
  TREEPO_RETURN_IF_ERROR(GetBool(r, "truncate", &rs.truncate));
  // transformers: the pre-training context defaults to max_position_embeddings for yarn.
  rs.original_max_position = rs.type == RopeScalingType::kYarn ? c->max_seq_len : 0;
  TREEPO_RETURN_IF_ERROR(
      GetInt(r, "original_max_position_embeddings", false, &rs.original_max_position));
  if (rs.type == RopeScalingType::kLlama3) {
    for (const char* k :
         {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
      if (!r.contains(k))
        return InvalidArgument(std::string("\"rope_scaling\" (llama3) needs \"") + k + "\"");
    }
  }
  if (rs.type == RopeScalingType::kYarn) {
    // transformers' get_mscale: 0.1 * m * ln(factor) + 1 for factor > 1.
    auto mscale = [&](double m) {
      return rs.factor <= 1 ? 1.0 : 0.1 * m * std::log(rs.factor) + 1.0;
    };
    double m = 0, m_all = 0;
    TREEPO_RETURN_IF_ERROR(GetFloat(r, "mscale", &m));
    TREEPO_RETURN_IF_ERROR(GetFloat(r, "mscale_all_dim", &m_all));
    if (r.contains("attention_factor") && !r["attention_factor"].is_null()) {
      TREEPO_RETURN_IF_ERROR(GetFloat(r, "attention_factor", &rs.attention_factor));
    } else if (m != 0 && m_all != 0) {
      rs.attention_factor = mscale(m) / mscale(m_all);
    } else {
      rs.attention_factor = mscale(1.0);
    }
  }
  return OkStatus();
}

Status ParseConfig(const nlohmann::json& j, ModelConfig* c) {
  // Every key is known: one that changes the model and is not understood must not be
  // silently ignored (the logits would be wrong).
  std::vector<std::string> unknown;
  for (const auto& [k, v] : j.items()) {
    if (!IgnoredKeys().contains(k) && !UsedKeys().contains(k)) unknown.push_back(k);
  }
  if (!unknown.empty()) {
    std::string list;
    for (const std::string& k : unknown) list += (list.empty() ? "\"" : ", \"") + k + "\"";
    return InvalidArgument("unsupported config key(s) " + list);
  }
  std::string model_type = "llama";  // also what configs without the key describe
  if (j.contains("model_type")) {
    if (!j["model_type"].is_string()) return InvalidArgument("\"model_type\" must be a string");
    model_type = j["model_type"].get<std::string>();
  }
  if (model_type != "llama" && model_type != "qwen2" && model_type != "qwen3") {
    return InvalidArgument("\"model_type\" \"" + model_type +
                           "\" is not supported (supported: llama, qwen2, qwen3)");
  }
  if (j.contains("hidden_act") && j["hidden_act"] != "silu") {
    return InvalidArgument("\"hidden_act\" " + j["hidden_act"].dump() +
                           " is not supported (only \"silu\")");
  }
  bool flag = false;
  TREEPO_RETURN_IF_ERROR(GetBool(j, "use_sliding_window", &flag));
  if (flag) return InvalidArgument("\"use_sliding_window\": true is not supported");
  TREEPO_RETURN_IF_ERROR(GetBool(j, "mlp_bias", &flag));
  if (flag) return InvalidArgument("\"mlp_bias\": true is not supported");
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    if (!j["layer_types"].is_array()) return InvalidArgument("\"layer_types\" must be a list");
    for (const nlohmann::json& t : j["layer_types"]) {
      if (t != "full_attention") {
        return InvalidArgument("\"layer_types\" entry " + t.dump() +
                               " is not supported (only \"full_attention\")");
      }
    }
  }
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
  // Qwen2 always has q/k/v biases (attention_bias is not read). Llama and Qwen3 put
  // attention_bias on q, k, v and o; an o_proj bias is not supported.
  c->qkv_bias = model_type == "qwen2";
  if (model_type != "qwen2") {
    TREEPO_RETURN_IF_ERROR(GetBool(j, "attention_bias", &flag));
    if (flag) {
      return InvalidArgument(
          "\"attention_bias\": true (biases on q, k, v and o_proj) is not "
          "supported for model_type " +
          model_type);
    }
  }
  c->qk_norm = model_type == "qwen3";
  TREEPO_RETURN_IF_ERROR(GetInt(j, "bos_token_id", false, &c->bos_id));
  std::vector<int> eos;
  TREEPO_RETURN_IF_ERROR(GetIdList(j, "eos_token_id", &eos));
  if (!eos.empty()) {
    c->eos_id = eos[0];
    if (eos.size() > 1) c->eos_ids = eos;
  }
  c->rope_layout = RopeLayout::kRotateHalf;
  if (j.contains("treepo_rope_layout")) {
    const nlohmann::json& v = j["treepo_rope_layout"];
    if (v == "adjacent") {
      c->rope_layout = RopeLayout::kAdjacentPairs;
    } else if (v != "half") {
      return InvalidArgument("\"treepo_rope_layout\" must be \"adjacent\" or \"half\"");
    }
  }
  TREEPO_RETURN_IF_ERROR(ParseRopeScaling(j, c));
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    int hd = 0;
    TREEPO_RETURN_IF_ERROR(GetInt(j, "head_dim", false, &hd));
    if (hd <= 0) return InvalidArgument("\"head_dim\" must be positive");
    // Stored only when it differs, so that the config of an ordinary model reads the same.
    if (c->n_heads <= 0 || c->dim % c->n_heads != 0 || hd != c->dim / c->n_heads) {
      c->head_size = hd;
    }
  }
  return c->Validate();
}

// More end-of-generation ids from the files beside config.json: generation_config.json's
// eos_token_id (Qwen2.5-Instruct stops on <|im_end|> there), and tokenizer_config.json's
// eos_token (the chat template's end of turn), by its id in added_tokens_decoder.
Status AddSiblingEosIds(const fs::path& dir, ModelConfig* c) {
  std::vector<int> ids = c->eos_ids.empty() ? std::vector<int>{c->eos_id} : c->eos_ids;
  std::error_code ec;
  const fs::path gen = dir / "generation_config.json";
  if (fs::exists(gen, ec)) {
    TREEPO_ASSIGN_OR_RETURN(nlohmann::json g, ReadJsonObjectFile(gen.string()));
    if (Status s = GetIdList(g, "eos_token_id", &ids); !s.ok()) return s.WithContext(gen.string());
  }
  const fs::path tok = dir / "tokenizer_config.json";
  if (fs::exists(tok, ec)) {
    TREEPO_ASSIGN_OR_RETURN(nlohmann::json t, ReadJsonObjectFile(tok.string()));
    std::string eos;
    if (t.contains("eos_token") && t["eos_token"].is_string()) {
      eos = t["eos_token"].get<std::string>();
    } else if (t.contains("eos_token") && t["eos_token"].is_object() &&
               t["eos_token"].contains("content") && t["eos_token"]["content"].is_string()) {
      eos = t["eos_token"]["content"].get<std::string>();
    }
    if (!eos.empty() && t.contains("added_tokens_decoder") &&
        t["added_tokens_decoder"].is_object()) {
      for (const auto& [id, info] : t["added_tokens_decoder"].items()) {
        if (info.is_object() && info.value("content", nlohmann::json()) == eos) {
          char* end = nullptr;
          const long v = std::strtol(id.c_str(), &end, 10);
          if (*end == '\0' && v >= 0 && v < c->vocab_size &&
              std::find(ids.begin(), ids.end(), static_cast<int>(v)) == ids.end()) {
            ids.push_back(static_cast<int>(v));
          }
        }
      }
    }
  }
  if (ids.size() > 1) c->eos_ids = ids;
  for (int id : ids) {
    if (id >= c->vocab_size) {
      return InvalidArgument("end-of-generation id " + std::to_string(id) +
                             " is outside the vocabulary of " + std::to_string(c->vocab_size) +
                             " (config.json or generation_config.json)");
    }
  }
  return OkStatus();
}

Status CheckFinite(const ModelWeights& w) {
  for (const TensorInfo& t : w.layout.tensors()) {
    for (size_t i = 0; i < t.numel; ++i) {
      const float v = w.dtype == WeightDtype::kF32 ? w.data[t.offset + i]
                                                   : HalfToFloat(w.half[t.offset + i], w.dtype);
      if (!std::isfinite(v)) {
        return DataLoss("tensor " + t.name + " has a non-finite value at element " +
                        std::to_string(i));
      }
    }
  }
  return OkStatus();
}

// Every tensor of the directory: model.safetensors, or the shards of the index.
Result<std::map<std::string, NamedTensor>> LoadDirTensors(const fs::path& dir, bool keep_16bit) {
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(single, ec) || !fs::exists(index, ec)) {
    return LoadSafetensors(single.string(), nullptr, keep_16bit);
  }
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
    TREEPO_ASSIGN_OR_RETURN(auto part,
                            LoadSafetensors((dir / shard).string(), nullptr, keep_16bit));
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
  if (Status s = AddSiblingEosIds(fs::path(path).parent_path(), &c); !s.ok()) return s;
  return c;
}

Status SaveHfConfig(const ModelConfig& c, const std::string& path) {
  TREEPO_RETURN_IF_ERROR(c.Validate());
  // A model with q/k/v biases is a Qwen2 model to `transformers` (Llama's attention_bias
  // would also add an o_proj bias); one with q/k norms a Qwen3 model.
  if (c.qkv_bias && c.qk_norm) {
    return InvalidArgument("a model with both q/k/v biases and q/k norms has no config.json form");
  }
  const char* type = c.qk_norm ? "qwen3" : c.qkv_bias ? "qwen2" : "llama";
  nlohmann::ordered_json j;
  j["architectures"] = {c.qk_norm    ? "Qwen3ForCausalLM"
                        : c.qkv_bias ? "Qwen2ForCausalLM"
                                     : "LlamaForCausalLM"};
  j["model_type"] = type;
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  if (c.head_size > 0 || c.qk_norm) j["head_dim"] = c.head_dim();
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rope_theta"] = c.rope_theta;
  const RopeScaling& rs = c.rope_scaling;
  switch (rs.type) {
    case RopeScalingType::kNone:
      break;
    case RopeScalingType::kLinear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rs.factor}};
      break;
    case RopeScalingType::kLlama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", rs.factor},
                           {"low_freq_factor", rs.low_freq_factor},
                           {"high_freq_factor", rs.high_freq_factor},
                           {"original_max_position_embeddings", rs.original_max_position}};
      break;
    case RopeScalingType::kYarn:
      j["rope_scaling"] = {{"rope_type", "yarn"},
                           {"factor", rs.factor},
                           {"original_max_position_embeddings", rs.original_max_position},
                           {"beta_fast", rs.beta_fast},
                           {"beta_slow", rs.beta_slow},
                           {"attention_factor", rs.attention_factor},
                           {"truncate", rs.truncate}};
      break;
  }
  j["rms_norm_eps"] = c.norm_eps;
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["attention_bias"] = c.qkv_bias;
  j["bos_token_id"] = c.bos_id;
  if (c.eos_ids.size() > 1) {
    j["eos_token_id"] = c.eos_ids;
  } else {
    j["eos_token_id"] = c.eos_id;
  }
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  j["treepo_rope_layout"] = c.rope_layout == RopeLayout::kAdjacentPairs ? "adjacent" : "half";
  return WriteFileAtomically(path, j.dump(2) + "\n");
}

Result<ModelWeights> LoadHfModel(const std::string& dir, bool keep_16bit) {
  const fs::path d(dir);
  TREEPO_ASSIGN_OR_RETURN(ModelConfig config, LoadHfConfig((d / "config.json").string()));
  TREEPO_RETURN_IF_ERROR(CheckWeightsFitMemory(config, keep_16bit ? 2 : 4));
  TREEPO_ASSIGN_OR_RETURN(auto tensors, LoadDirTensors(d, keep_16bit));
  // One 16-bit storage type when asked for and every matrix has it; fp32 otherwise.
  const ParamLayout layout(config);
  WeightDtype dtype = WeightDtype::kF32;
  if (keep_16bit) {
    std::optional<WeightDtype> common;
    bool mixed = false;
    for (const TensorInfo& info : layout.tensors()) {
      auto it = tensors.find(info.name);
      if (info.shape.size() != 2 || it == tensors.end()) continue;
      if (common && *common != it->second.dtype) mixed = true;
      common = it->second.dtype;
    }
    if (common && !mixed) dtype = *common;
  }
  ModelWeights w;
  if (dtype == WeightDtype::kF32) {
    TREEPO_RETURN_IF_ERROR(CheckWeightsFitMemory(config));
    TREEPO_ASSIGN_OR_RETURN(w, ModelWeights::Zeros(config));
  } else {
    w.config = config;
    w.layout = layout;
    w.dtype = dtype;
    w.half.assign(layout.total(), 0);
  }
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
    const NamedTensor& t = it->second;
    for (size_t i = 0; i < info.numel; ++i) {
      const float v = t.dtype == WeightDtype::kF32 ? t.data[i] : HalfToFloat(t.half[i], t.dtype);
      if (dtype == WeightDtype::kF32) {
        w.data[info.offset + i] = v;
      } else {
        w.half[info.offset + i] = t.dtype == dtype ? t.half[i] : FloatToHalf(v, dtype);
      }
    }
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
  if (w.dtype != WeightDtype::kF32) w.IndexVectors();
  if (Status s = CheckFinite(w); !s.ok()) return s.WithContext(where);
  return w;
}

Status SaveHfModel(const ModelWeights& weights, const std::string& dir) {
  if (!weights.complete()) {
    return InvalidArgument("weights hold " +
                           std::to_string(weights.data.size() + weights.half.size()) +
                           " values, layout needs " + std::to_string(weights.layout.total()));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return NotFound("cannot create directory " + dir + ": " + ec.message());
  TREEPO_RETURN_IF_ERROR(SaveHfConfig(weights.config, (fs::path(dir) / "config.json").string()));
  std::map<std::string, NamedTensor> tensors;
  for (const TensorInfo& t : weights.layout.tensors()) {
    NamedTensor& out = tensors[t.name];
    out.shape = t.shape;
    out.dtype = weights.dtype;
    if (weights.dtype == WeightDtype::kF32) {
      out.data.assign(weights.at(t.offset), weights.at(t.offset) + t.numel);
    } else {
      out.half.assign(weights.half.begin() + static_cast<std::ptrdiff_t>(t.offset),
                      weights.half.begin() + static_cast<std::ptrdiff_t>(t.offset + t.numel));
    }
  }
  return SaveSafetensors((fs::path(dir) / "model.safetensors").string(), tensors,
                         {{"format", "pt"}});
}

Result<ModelWeights> LoadModel(const std::string& path, bool keep_16bit) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return NotFound("model path " + path + " does not exist");
  if (fs::is_directory(st)) return LoadHfModel(path, keep_16bit);
  if (fs::path(path).extension() == ".bin") return LoadLlama2cCheckpoint(path);
  return InvalidArgument("model path " + path +
                         ": expected a Hugging Face model directory or a llama2.c .bin file");
}

Result<WeightDtype> StoredWeightDtype(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return WeightDtype::kF32;
  const fs::path dir(path);
  std::vector<fs::path> files;
  const fs::path index = dir / "model.safetensors.index.json";
  if (!fs::exists(dir / "model.safetensors", ec) && fs::exists(index, ec)) {
    TREEPO_ASSIGN_OR_RETURN(nlohmann::json j, ReadJsonObjectFile(index.string()));
    std::set<std::string> shards;
    if (j.contains("weight_map") && j["weight_map"].is_object()) {
      for (const auto& [name, file] : j["weight_map"].items()) {
        if (file.is_string()) shards.insert(file.get<std::string>());
      }
    }
    for (const std::string& s : shards) files.push_back(dir / s);
  } else {
    files.push_back(dir / "model.safetensors");
  }
  std::optional<std::string> common;
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    uint64_t len = 0;
    if (!in.read(reinterpret_cast<char*>(&len), sizeof(len)) || len > (uint64_t{100} << 20)) {
      return DataLoss("safetensors " + f.string() + ": cannot read the header");
    }
    std::string text(len, '\0');
    if (!in.read(text.data(), static_cast<std::streamsize>(len))) {
      return DataLoss("safetensors " + f.string() + ": truncated header");
    }
    const nlohmann::json h = nlohmann::json::parse(text, nullptr, false);
    if (!h.is_object()) return DataLoss("safetensors " + f.string() + ": header is not JSON");
    for (const auto& [name, e] : h.items()) {
      if (!e.is_object() || !e.contains("shape") || !e["shape"].is_array() ||
          e["shape"].size() != 2 || !e.contains("dtype") || !e["dtype"].is_string()) {
        continue;
      }
      const std::string d = e["dtype"].get<std::string>();
      if (common && *common != d) return WeightDtype::kF32;
      common = d;
    }
  }
  if (common == "BF16") return WeightDtype::kBF16;
  if (common == "F16") return WeightDtype::kF16;
  return WeightDtype::kF32;
}

Result<ModelConfig> LoadModelConfig(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return LoadHfConfig((fs::path(path) / "config.json").string());
  TREEPO_ASSIGN_OR_RETURN(ModelWeights w, LoadModel(path));
  return w.config;
}

}  // namespace treepo::model
