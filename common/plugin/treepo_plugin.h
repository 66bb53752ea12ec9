/* treepo plug-in ABI (C, versioned). See docs/plugins.md.
 *
 * A plug-in is a shared library that exports
 *
 *   uint32_t treepo_plugin_abi_version(void);           returns TREEPO_PLUGIN_ABI_VERSION
 *   int treepo_plugin_init(const TreepoPluginApi* api);  registers its extensions; 0 = success
 *
 * The host dlopens each library named in the config's `plugins` list at start, refuses it
 * when either symbol is missing or the versions differ, then calls treepo_plugin_init once.
 * Inside init the plug-in calls api->register_* for each extension it provides; a register
 * call returns 0, or non-zero when the descriptor is refused (empty or duplicate name, a
 * missing function), with the reason in api->last_error(api->host). A non-zero return from
 * init fails the start with that reason.
 *
 * Everything crosses the boundary as C types; strings are (pointer, length) pairs valid only
 * during the call. A descriptor is copied at registration (its name too); `state` is handed
 * back on every call and must stay valid for the life of the process (plug-ins are never
 * unloaded). Calls may come from several threads at once: a plug-in's functions must be
 * thread-safe for concurrent calls on the same state.
 *
 * Versioning: any change to a struct below or to a function's meaning raises
 * TREEPO_PLUGIN_ABI_VERSION; the host accepts exactly its own version. */
#ifndef TREEPO_COMMON_PLUGIN_TREEPO_PLUGIN_H_
#define TREEPO_COMMON_PLUGIN_TREEPO_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TREEPO_PLUGIN_ABI_VERSION 2u

/* A string that is not NUL-terminated. */
typedef struct TreepoText {
  const char* data;
  size_t size;
} TreepoText;

/* ---- rewards (the scheduler scores each finished leaf) ---- */

typedef struct TreepoRewardOutput {
  float reward;         /* the scalar reward; the host starts it at 0 */
  char* extracted;      /* host buffer for the answer read from the response, NUL-terminated */
  size_t extracted_cap; /* its size in bytes, >= 1; longer answers must be cut */
} TreepoRewardOutput;

/* Scores `response` against `reference`. response_tokens: the response's token count, or -1
 * when unknown. Must not fail; an unusable response gets the plug-in's lowest reward. */
typedef void (*TreepoRewardScoreFn)(void* state, TreepoText response, TreepoText reference,
                                    int32_t response_tokens, TreepoRewardOutput* out);

typedef struct TreepoRewardPlugin {
  const char* name; /* the name the config uses (reward.name); NUL-terminated */
  void* state;
  TreepoRewardScoreFn score;
} TreepoRewardPlugin;

/* ---- advantage estimators (the learner, per query tree) ---- */

typedef struct TreepoLeaf {
  uint64_t node;        /* the leaf's last node */
  float reward;         /* the leaf's reward */
  const uint64_t* path; /* node ids root-to-leaf: the depth-1 node first, `node` last */
  size_t path_len;
  int32_t tokens; /* the leaf's response tokens (the whitening weight), >= 0 */
} TreepoLeaf;

typedef struct TreepoQuery {
  TreepoText query_id;
  const TreepoLeaf* leaves;
  size_t n_leaves;
} TreepoQuery;

/* Writes one advantage per leaf of `query` into advantages[0 .. n_leaves). Must not fail. */
typedef void (*TreepoEstimatorComputeFn)(void* state, const TreepoQuery* query, double* advantages);

typedef struct TreepoEstimatorPlugin {
  const char* name; /* the name the config uses (learner.estimator); NUL-terminated */
  void* state;
  TreepoEstimatorComputeFn compute;
  /* Non-zero: the learner whitens the batch's advantages over its response tokens afterwards
   * (TREEPO_SPEC.md section 5); zero: they are trained on as computed. */
  int32_t whiten;
} TreepoEstimatorPlugin;

/* ---- stop rules (the scheduler, on every new segment) ---- */

/* The reasons a stop rule may return. */
enum {
  TREEPO_STOP_NONE = 0, /* the path goes on (as far as this rule is concerned) */
  TREEPO_STOP_FINISHED = 1,
  TREEPO_STOP_EOS = 2,
  TREEPO_STOP_MAX_TOKENS = 3,
  TREEPO_STOP_MAX_DEPTH = 4,
  TREEPO_STOP_REPETITION = 5
};

typedef struct TreepoSegmentView {
  TreepoText text;             /* decoded text of this segment only */
  int32_t has_eos;             /* the segment holds EOS */
  int32_t response_tokens;     /* tokens on the path including this segment */
  int32_t depth;               /* depth of the segment's node (1 = first segment) */
  int32_t max_depth;           /* d */
  int32_t max_response_tokens; /* d * L */
} TreepoSegmentView;

/* One of TREEPO_STOP_*. */
typedef int32_t (*TreepoStopCheckFn)(void* state, const TreepoSegmentView* segment);

typedef struct TreepoStopRulePlugin {
  const char* name; /* listed in stop.extra_rules; checked after the built-in rules */
  void* state;
  TreepoStopCheckFn check;
} TreepoStopRulePlugin;

/* ---- branching policies (the scheduler, per tree step) ---- */

typedef struct TreepoBranchPath {
  uint64_t tip;             /* the path's newest node */
  double cum_logprob;       /* sum over the path's response tokens */
  int32_t response_tokens;  /* tokens on the path */
  double last_mean_logprob; /* mean log-prob of the newest segment (0 if empty) */
} TreepoBranchPath;

/* Writes children per path into counts[0 .. n_paths): each >= 1, summing to `total`
 * (total >= n_paths >= 1). The host checks the result and stops the run on a violation. */
typedef void (*TreepoBranchSplitFn)(void* state, int32_t total, const TreepoBranchPath* paths,
                                    size_t n_paths, int32_t* counts);

typedef struct TreepoBranchingPlugin {
  const char* name; /* the name the config uses (sampler.branching.policy) */
  void* state;
  TreepoBranchSplitFn split;
} TreepoBranchingPlugin;

/* ---- token samplers (each worker, per decoded token) ---- */

typedef struct TreepoSamplingParams {
  float temperature; /* 0: greedy */
  int32_t top_k;     /* 0: off */
  float top_p;       /* 1: off */
} TreepoSamplingParams;

typedef struct TreepoSample {
  int32_t token; /* in [0, vocab) */
  float logprob; /* log p(token) under the distribution it was drawn from, finite */
} TreepoSample;

/* Draws one token from logits[0 .. vocab). `random`: 64 fresh bits from the node's own
 * deterministic stream (one value per call; seed a generator from it to need more), so a
 * node's tokens depend only on its seed. The host checks the result and stops the worker on
 * a token outside the vocabulary or a non-finite log-prob. */
typedef TreepoSample (*TreepoSamplerDrawFn)(void* state, const float* logits, int32_t vocab,
                                            const TreepoSamplingParams* params, uint64_t random);

typedef struct TreepoSamplerPlugin {
  const char* name; /* the name the worker uses (cluster.worker_sampler, worker --sampler) */
  void* state;
  TreepoSamplerDrawFn draw;
} TreepoSamplerPlugin;

/* ---- learners (the learner process: the training algorithm) ----
 *
 * A learner plug-in brings its loss and optimiser; the host brings the model: its forward
 * pass (per response token log-probs under the current weights) and backward pass (the
 * gradient of any per-token weighted sum of those log-probs), tree-packed and in micro-batches
 * as the learner.* options say. The host advances the weight version after every step,
 * publishes the weights to the workers and checkpoints them; the plug-in checkpoints its own
 * state (optimiser moments) through save_state / load_state. */

/* One weight tensor: Hugging Face name, row-major. `data` is the host's fp32 storage, which
 * the plug-in updates in place; it stays at this address for the life of the instance. */
typedef struct TreepoTensor {
  const char* name; /* NUL-terminated, e.g. "model.layers.0.self_attn.q_proj.weight" */
  float* data;
  const int64_t* shape;
  int32_t ndim;
  size_t numel;
} TreepoTensor;

/* One training sequence: a leaf's root-to-leaf path (prompt, then response). */
typedef struct TreepoLearnerSequence {
  const int32_t* tokens; /* [n_tokens]: prompt tokens, then response tokens */
  int32_t n_tokens;
  int32_t prompt_len; /* >= 1; response token j is tokens[prompt_len + j] */
  /* The response tokens' values, each [n_tokens - prompt_len]: */
  const float* rollout_logp; /* log-probs the workers sampled them with */
  const float* advantages;   /* the estimator's per-token advantages (learner.estimator) */
  const uint64_t* versions;  /* weight version that sampled each token */
  uint32_t tree;             /* index of the leaf's tree in this step's batch (this rank's) */
  TreepoText query_id;       /* the tree's query */
  float reward;              /* the leaf's reward */
} TreepoLearnerSequence;

/* What a step may report; the host starts every field at 0 and sends them with TrainDone. */
typedef struct TreepoLearnerMetrics {
  double loss;      /* this rank's part: the host sums it over the ranks */
  double grad_norm; /* of the whole batch's gradient (the same on every rank) */
  double lr;
  int64_t optimizer_steps;
} TreepoLearnerMetrics;

typedef struct TreepoLearnerStep TreepoLearnerStep;
struct TreepoLearnerStep {
  void* host;         /* the host's; leave alone */
  uint64_t version;   /* version of the weights now; the step makes version + 1 */
  int32_t rank;       /* this rank, 0 .. world_size - 1 */
  int32_t world_size; /* data-parallel ranks, each stepping on its own shard of the batch */
  const TreepoLearnerSequence* sequences; /* this rank's shard, grouped by tree */
  size_t n_sequences;
  /* Response tokens over `sequences`: the length of forward's and backward's arrays, which
   * hold sequence 0's response tokens, then sequence 1's, ... */
  size_t n_tokens;
  TreepoTensor* tensors; /* the weights (same as at create) */
  size_t n_tensors;
  TreepoLearnerMetrics* metrics;
  /* logp_out[n_tokens] = log p(response token | its path) under the weights as they are now.
   * 0, or non-zero on failure (the reason in `error`; return non-zero from step then). */
  int (*forward)(const TreepoLearnerStep* ctx, float* logp_out);
  /* The gradient of sum_t coeff[t] * logp_t (coeff[n_tokens]) under the weights as they are
   * now, summed over every rank (every rank must call it the same number of times, also with
   * an empty shard); grads[i] is set to tensor i's gradient (tensors[i].numel floats, the
   * host's buffer, valid until the next backward or the end of the step). Runs its own
   * forward pass. 0, or non-zero on failure. */
  int (*backward)(const TreepoLearnerStep* ctx, const float* coeff, float** grads);
  /* Sums values[0 .. n) over every rank in place (token counts, loss sums); every rank must
   * call it alike. 0, or non-zero on failure. */
  int (*all_reduce_sum)(const TreepoLearnerStep* ctx, double* values, size_t n);
  char* error; /* the step's failure reason (NUL-terminated, at most error_cap bytes) */
  size_t error_cap;
};

typedef struct TreepoLearnerInit {
  TreepoTensor* tensors; /* the weights, updated in place by step */
  size_t n_tensors;
  int32_t rank;
  int32_t world_size;
  TreepoText settings; /* learner.algorithm_options, verbatim ("" when unset) */
  char* error;         /* create's failure reason (NUL-terminated, at most error_cap bytes) */
  size_t error_cap;
} TreepoLearnerInit;

typedef struct TreepoLearnerPlugin {
  const char* name; /* the name the config uses (learner.algorithm); NUL-terminated */
  void* state;      /* the plug-in's; handed to create */
  /* Makes one learner instance (one per learner process, or per rank in a test) into
   * *instance. 0, or non-zero with the reason in init->error. Required. */
  int (*create)(void* state, const TreepoLearnerInit* init, void** instance);
  /* Frees an instance. Optional (NULL). */
  void (*destroy)(void* instance);
  /* One training step on ctx's batch: update ctx->tensors in place. 0, or non-zero with the
   * reason in ctx->error; a failed step leaves the version where it was. Required. Called
   * from one thread at a time per instance. */
  int (*step)(void* instance, const TreepoLearnerStep* ctx);
  /* Writes the instance's own state (optimiser) into the checkpoint directory `dir` (the
   * host writes the weights there); load_state reads it back on a resume. Optional (NULL:
   * the plug-in keeps no state across steps). 0, or non-zero on failure. */
  int (*save_state)(void* instance, const char* dir);
  int (*load_state)(void* instance, const char* dir);
} TreepoLearnerPlugin;

/* ---- the host's side ---- */

typedef struct TreepoPluginApi {
  uint32_t abi_version; /* TREEPO_PLUGIN_ABI_VERSION of the host */
  void* host;           /* pass back to every function below */
  int (*register_reward)(void* host, const TreepoRewardPlugin* plugin);
  int (*register_estimator)(void* host, const TreepoEstimatorPlugin* plugin);
  int (*register_stop_rule)(void* host, const TreepoStopRulePlugin* plugin);
  int (*register_branching)(void* host, const TreepoBranchingPlugin* plugin);
  int (*register_sampler)(void* host, const TreepoSamplerPlugin* plugin);
  int (*register_learner)(void* host, const TreepoLearnerPlugin* plugin);
  /* The reason of the last refused registration ("" when none); valid until the next call. */
  const char* (*last_error)(void* host);
  /* Writes one line to the host's log at info level. */
  void (*log)(void* host, const char* message);
} TreepoPluginApi;

typedef uint32_t (*TreepoPluginAbiVersionFn)(void);
typedef int (*TreepoPluginInitFn)(const TreepoPluginApi* api);

#ifdef __cplusplus
}
#endif

#endif /* TREEPO_COMMON_PLUGIN_TREEPO_PLUGIN_H_ */
