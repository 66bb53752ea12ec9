// libtreepo_client: the C interface of learner/client/treepo_client.h over the built-in
// learner's own pieces (LearnerConnection, BuildLearnerBatch, ChunkWeights).
#include "learner/client/treepo_client.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/model/safetensors.h"
#include "common/model/weights.h"
#include "common/tree/tree_record.h"
#include "learner/advantage/advantage.h"
#include "learner/service/learner_connection.h"
#include "learner/service/train_batch.h"
#include "learner/service/weight_publisher.h"

namespace pr = treepo::protocols;
namespace tl = treepo::learner;
using treepo::Result;
using treepo::Status;

struct treepo_client {
  std::unique_ptr<tl::LearnerConnection> conn;
  treepo::model::ModelWeights weights;  // the model's layout and initial weights
  std::unique_ptr<tl::AdvantageEstimator> estimator;
  size_t chunk_bytes = tl::kDefaultWeightChunkBytes;
  uint64_t version = 0;
  std::string error;
  std::string model_json;
};

struct treepo_batch {
  uint64_t step = 0;
  std::vector<int64_t> offsets;
  std::vector<int32_t> prompt_lens, trees, tokens;
  std::vector<float> rewards, advantages, logprobs;
  std::vector<uint64_t> versions;
  int64_t num_trees = 0;
  std::string trees_jsonl;
};

namespace {

std::string Str(const char* s) { return s == nullptr ? std::string() : std::string(s); }

void CopyError(const std::string& message, char* error, size_t error_len) {
  if (error == nullptr || error_len == 0) return;
  const size_t n = std::min(error_len - 1, message.size());
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

int Fail(treepo_client* c, const Status& st) {
  c->error = st.ToString();
  return -1;
}

// Flattens the learner batch into the C arrays.
treepo_batch* MakeBatch(uint64_t step, const std::vector<treepo::TreeRecord>& trees,
                        const tl::LearnerBatch& b) {
  auto out = std::make_unique<treepo_batch>();
  out->step = step;
  out->num_trees = static_cast<int64_t>(trees.size());
  out->offsets.push_back(0);
  for (const tl::TrainSequence& s : b.sequences) {
    out->prompt_lens.push_back(s.prompt_len);
    out->trees.push_back(static_cast<int32_t>(s.tree));
    out->rewards.push_back(s.reward);
    out->tokens.insert(out->tokens.end(), s.tokens.begin(), s.tokens.end());
    out->advantages.insert(out->advantages.end(), static_cast<size_t>(s.prompt_len), 0.0f);
    out->advantages.insert(out->advantages.end(), s.advantages.begin(), s.advantages.end());
    out->logprobs.insert(out->logprobs.end(), static_cast<size_t>(s.prompt_len), 0.0f);
    out->logprobs.insert(out->logprobs.end(), s.rollout_logp.begin(), s.rollout_logp.end());
    out->versions.insert(out->versions.end(), static_cast<size_t>(s.prompt_len), 0);
    out->versions.insert(out->versions.end(), s.versions.begin(), s.versions.end());
    out->offsets.push_back(static_cast<int64_t>(out->tokens.size()));
  }
  for (const treepo::TreeRecord& t : trees) {
    out->trees_jsonl += treepo::TreeRecordToJson(t);
    out->trees_jsonl += '\n';
  }
  return out.release();
}

}  // namespace

extern "C" {

int treepo_client_abi_version(void) { return TREEPO_CLIENT_ABI_VERSION; }

void treepo_client_options_init(treepo_client_options* o) {
  if (o == nullptr) return;
  std::memset(o, 0, sizeof(*o));
  o->world_size = 1;
}

treepo_client* treepo_client_connect(const treepo_client_options* o, char* error,
                                     size_t error_len) {
  try {
    if (o == nullptr) {
      CopyError("treepo_client_connect: options is NULL", error, error_len);
      return nullptr;
    }
    auto c = std::make_unique<treepo_client>();
    auto fail = [&](const Status& st) -> treepo_client* {
      CopyError(st.ToString(), error, error_len);
      return nullptr;
    };
    if (Str(o->model).empty()) return fail(treepo::InvalidArgument("options.model is not set"));
    Result<treepo::model::ModelWeights> w = treepo::model::LoadModel(o->model);
    if (!w.ok()) return fail(w.status());
    c->weights = std::move(*w);
    const std::string estimator = Str(o->estimator).empty() ? "treepo" : Str(o->estimator);
    auto est = tl::MakeAdvantageEstimator(estimator);
    if (!est.ok()) return fail(est.status());
    c->estimator = std::move(*est);
    if (o->weight_chunk_bytes > 0) c->chunk_bytes = static_cast<size_t>(o->weight_chunk_bytes);
    tl::ConnectionOptions co;
    co.scheduler_endpoint = Str(o->scheduler);
    co.name = Str(o->name).empty() ? "client-learner-" + std::to_string(::getpid()) : o->name;
    co.rank = o->rank;
    co.world_size = o->world_size;
    if (o->register_timeout_ms > 0) co.register_timeout_ms = o->register_timeout_ms;
    co.keys.scheduler_key_file = Str(o->scheduler_key);
    co.keys.key_file = Str(o->key);
    co.keys.insecure = o->insecure != 0;
    auto conn = tl::LearnerConnection::Connect(co, nullptr);
    if (!conn.ok()) return fail(conn.status());
    c->conn = std::move(*conn);
    c->version = c->conn->scheduler_version();
    return c.release();
  } catch (const std::exception& e) {
    CopyError(std::string("treepo_client_connect: ") + e.what(), error, error_len);
    return nullptr;
  }
}

void treepo_client_close(treepo_client* c) { delete c; }

const char* treepo_client_error(const treepo_client* c) {
  return c == nullptr ? "client is NULL" : c->error.c_str();
}

const char* treepo_client_model_json(treepo_client* c) {
  const treepo::model::ModelConfig& m = c->weights.config;
  nlohmann::json j;
  j["config"] = {
      {"dim", m.dim},
      {"hidden_dim", m.hidden_dim},
      {"n_layers", m.n_layers},
      {"n_heads", m.n_heads},
      {"n_kv_heads", m.n_kv_heads},
      {"vocab_size", m.vocab_size},
      {"max_seq_len", m.max_seq_len},
      {"rope_theta", m.rope_theta},
      {"norm_eps", m.norm_eps},
      {"rope_layout",
       m.rope_layout == treepo::model::RopeLayout::kRotateHalf ? "rotate_half" : "adjacent_pairs"},
      {"tied_embeddings", m.tied_embeddings},
      {"qkv_bias", m.qkv_bias},
      {"qk_norm", m.qk_norm},
      {"head_dim", m.head_dim()},
      {"rope_scaling", m.rope_scaling.type == treepo::model::RopeScalingType::kNone     ? "none"
                       : m.rope_scaling.type == treepo::model::RopeScalingType::kLinear ? "linear"
                       : m.rope_scaling.type == treepo::model::RopeScalingType::kLlama3 ? "llama3"
                                                                                        : "yarn"},
      {"bos_id", m.bos_id},
      {"eos_id", m.eos_id}};
  j["tensors"] = nlohmann::json::array();
  for (const treepo::model::TensorInfo& t : c->weights.layout.tensors()) {
    j["tensors"].push_back(
        {{"name", t.name}, {"shape", t.shape}, {"offset", t.offset}, {"numel", t.numel}});
  }
  j["total"] = c->weights.layout.total();
  j["version"] = c->version;
  c->model_json = j.dump();
  return c->model_json.c_str();
}

const float* treepo_client_initial_weights(const treepo_client* c, int64_t* total) {
  if (total != nullptr) *total = static_cast<int64_t>(c->weights.data.size());
  return c->weights.data.data();
}

int treepo_client_next_batch(treepo_client* c, int timeout_ms, treepo_batch** batch) {
  try {
    *batch = nullptr;
    const int64_t deadline = treepo::SteadyNowMs() + std::max(0, timeout_ms);
    do {
      const int left = static_cast<int>(std::max<int64_t>(0, deadline - treepo::SteadyNowMs()));
      Result<std::optional<pr::Message>> m = c->conn->Recv(left);
      if (!m.ok()) return Fail(c, m.status());
      if (!m->has_value()) continue;
      if (const auto* tb = (*m)->get_if<pr::TreeBatch>()) {
        tl::SumReducer none;
        Result<tl::LearnerBatch> b =
            tl::BuildLearnerBatch(tb->trees, *c->estimator, c->weights.config.max_seq_len, none);
        if (!b.ok()) {
          c->conn
              ->Send(pr::ErrorReply{b.status().code(), b.status().message(),
                                    pr::MessageType::kTreeBatch})
              .IgnoreError();
          return Fail(c, b.status());
        }
        *batch = MakeBatch(tb->step, tb->trees, *b);
        return 1;
      }
      if ((*m)->get_if<pr::Shutdown>() != nullptr) return 2;
      if (const auto* err = (*m)->get_if<pr::ErrorReply>()) {
        if (err->code == treepo::StatusCode::kFailedPrecondition) {
          return Fail(c,
                      treepo::FailedPrecondition("scheduler fenced this learner: " + err->message));
        }
      }
    } while (treepo::SteadyNowMs() < deadline);
    return 0;
  } catch (const std::exception& e) {
    c->error = e.what();
    return -1;
  }
}

int treepo_client_publish(treepo_client* c, uint64_t version, int64_t n, const char* const* names,
                          const float* const* data, const int64_t* numel) {
  try {
    const treepo::model::ParamLayout& layout = c->weights.layout;
    std::vector<float> flat(layout.total(), 0.0f);
    std::vector<bool> seen(layout.tensors().size(), false);
    std::unordered_map<std::string, size_t> index;
    for (size_t i = 0; i < layout.tensors().size(); ++i) index[layout.tensors()[i].name] = i;
    for (int64_t k = 0; k < n; ++k) {
      const std::string name = Str(names[k]);
      auto it = index.find(name);
      if (it == index.end()) {
        return Fail(c, treepo::InvalidArgument("publish: the model has no tensor '" + name + "'"));
      }
      const treepo::model::TensorInfo& t = layout.tensors()[it->second];
      if (seen[it->second]) {
        return Fail(c, treepo::InvalidArgument("publish: tensor '" + name + "' given twice"));
      }
      if (numel[k] != static_cast<int64_t>(t.numel) || data[k] == nullptr) {
        return Fail(c, treepo::InvalidArgument(
                           "publish: tensor '" + name + "' has " + std::to_string(numel[k]) +
                           " values, the model's has " + std::to_string(t.numel)));
      }
      std::memcpy(flat.data() + t.offset, data[k], t.numel * sizeof(float));
      seen[it->second] = true;
    }
    for (size_t i = 0; i < seen.size(); ++i) {
      if (!seen[i]) {
        return Fail(c, treepo::InvalidArgument("publish: tensor '" + layout.tensors()[i].name +
                                               "' is missing"));
      }
    }
    tl::MessageWeightPublisher publisher([c](pr::Payload p) { return c->conn->Send(std::move(p)); },
                                         c->chunk_bytes);
    Status st = publisher.Publish(treepo::WeightVersion(version), flat);
    if (!st.ok()) return Fail(c, st);
    c->version = version;
    return 0;
  } catch (const std::exception& e) {
    c->error = e.what();
    return -1;
  }
}

int treepo_client_train_done(treepo_client* c, uint64_t step, uint64_t version, int64_t n,
                             const char* const* names, const double* values) {
  pr::TrainDone done{step, treepo::WeightVersion(version), {}};
  for (int64_t k = 0; k < n; ++k) done.metrics.push_back({Str(names[k]), values[k]});
  const Status st = c->conn->Send(std::move(done));
  return st.ok() ? 0 : Fail(c, st);
}

int treepo_client_fail(treepo_client* c, const char* message) {
  const Status st = c->conn->Send(pr::ErrorReply{treepo::StatusCode::kInternal,
                                                 Str(message).empty() ? "failed" : Str(message),
                                                 pr::MessageType::kTreeBatch});
  return st.ok() ? 0 : Fail(c, st);
}

uint64_t treepo_batch_step(const treepo_batch* b) { return b->step; }
int64_t treepo_batch_num_sequences(const treepo_batch* b) {
  return static_cast<int64_t>(b->prompt_lens.size());
}
int64_t treepo_batch_num_tokens(const treepo_batch* b) {
  return static_cast<int64_t>(b->tokens.size());
}
const int64_t* treepo_batch_offsets(const treepo_batch* b) { return b->offsets.data(); }
const int32_t* treepo_batch_prompt_lens(const treepo_batch* b) { return b->prompt_lens.data(); }
const int32_t* treepo_batch_trees(const treepo_batch* b) { return b->trees.data(); }
const float* treepo_batch_rewards(const treepo_batch* b) { return b->rewards.data(); }
const int32_t* treepo_batch_tokens(const treepo_batch* b) { return b->tokens.data(); }
const float* treepo_batch_advantages(const treepo_batch* b) { return b->advantages.data(); }
const float* treepo_batch_logprobs(const treepo_batch* b) { return b->logprobs.data(); }
const uint64_t* treepo_batch_versions(const treepo_batch* b) { return b->versions.data(); }
int64_t treepo_batch_num_trees(const treepo_batch* b) { return b->num_trees; }
const char* treepo_batch_trees_jsonl(const treepo_batch* b) { return b->trees_jsonl.c_str(); }
void treepo_batch_free(treepo_batch* b) { delete b; }

}  // extern "C"
