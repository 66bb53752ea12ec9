/* treepo_client.h: the C interface of libtreepo_client, with which a process outside treepo
 * (a PyTorch, JAX or Megatron trainer) serves a treepo scheduler as its learner: it registers
 * (as one data-parallel rank, or the only one), receives every step's tree batch, and publishes
 * the weights it trained with a version. It speaks the same protocol as the built-in learner
 * (the same connection code; docs/protocol.md, docs/external-learner.md).
 *
 * Conventions: functions returning int return 0 on success and -1 on failure, with the
 * reason in treepo_client_error(). Pointers returned by a batch stay valid until
 * treepo_batch_free; strings returned by the client until the next call on it. A client is
 * used by one thread at a time. Nothing here aborts on bad input.
 */
#ifndef TREEPO_CLIENT_H_
#define TREEPO_CLIENT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change of this header; check it against the library's. */
#define TREEPO_CLIENT_ABI_VERSION 1

typedef struct treepo_client treepo_client;
typedef struct treepo_batch treepo_batch;

typedef struct treepo_client_options {
  const char* scheduler;      /* scheduler endpoint, "tcp://HOST:PORT" (required) */
  const char* model;          /* the model the run starts from: HF dir or llama2.c .bin
                                 (required: it fixes the tensors and the initial weights) */
  const char* name;           /* NULL or "": "client-learner-<pid>" */
  const char* estimator;      /* advantage estimator for the batches' advantages; NULL or "":
                                 "treepo" (learner.estimator names) */
  const char* scheduler_key;  /* the scheduler's CURVE public key file, or NULL */
  const char* key;            /* this learner's CURVE key file (NAME.key), or NULL */
  int insecure;               /* 1: a non-loopback scheduler without keys (warned) */
  int rank;                   /* data-parallel rank of this process, 0 <= rank < world_size */
  int world_size;             /* ranks of the run (the scheduler shards each step's trees) */
  int register_timeout_ms;    /* <= 0: 30000 */
  int64_t weight_chunk_bytes; /* <= 0: 1 MiB */
} treepo_client_options;

/* TREEPO_CLIENT_ABI_VERSION of the library. */
int treepo_client_abi_version(void);
/* Fills the defaults (all NULL / 0, world_size 1). */
void treepo_client_options_init(treepo_client_options* options);

/* Loads the model, connects and registers; blocks until the scheduler acknowledged. NULL on
 * failure, with the reason in error (error_len bytes, NUL-terminated; may be NULL). */
treepo_client* treepo_client_connect(const treepo_client_options* options, char* error,
                                     size_t error_len);
/* Closes the connection and frees everything (NULL is fine). */
void treepo_client_close(treepo_client* client);
/* The reason of the last failure ("" when none). */
const char* treepo_client_error(const treepo_client* client);

/* The model: a JSON object {"config": {...ModelConfig fields...}, "tensors": [{"name",
 * "shape", "offset", "numel"}...], "total": N, "version": V}: tensor names are Hugging Face
 * names, offsets index the flat buffer of treepo_client_initial_weights (float32, N values). */
const char* treepo_client_model_json(treepo_client* client);
const float* treepo_client_initial_weights(const treepo_client* client, int64_t* total);

/* Waits up to timeout_ms for the next step's batch.
 * Returns 1 with *batch set (free it with treepo_batch_free), 0 when none came in time,
 * 2 when the scheduler ended the run (Shutdown), -1 on failure. */
int treepo_client_next_batch(treepo_client* client, int timeout_ms, treepo_batch** batch);

/* Publishes new weights as `version` (one more than the last version for a step; rank 0
 * only): `n` tensors by Hugging Face name, each float32 with the model's shape (numel[i]
 * values at data[i]), every tensor of the model exactly once. They are sent to the scheduler
 * in checksummed chunks and relayed to every worker. */
int treepo_client_publish(treepo_client* client, uint64_t version, int64_t n,
                          const char* const* names, const float* const* data, const int64_t* numel);
/* Reports the end of `step` with the weight version it produced and metrics (name, value)
 * (rank 0 only; send it after publishing that version). */
int treepo_client_train_done(treepo_client* client, uint64_t step, uint64_t version, int64_t n,
                             const char* const* names, const double* values);
/* Reports that `step` failed (the scheduler ends the run with this message). */
int treepo_client_fail(treepo_client* client, const char* message);

/* ---- a batch: the trees of one step (this rank's shard), as training sequences ----
 * One sequence per leaf with at least one response token: the prompt tokens, then the
 * tokens of the root-to-leaf path. Per token: advantage (the leaf's, from the estimator,
 * whitened over the batch when the estimator whitens: with world_size > 1 over this rank's
 * shard only; 0 on prompt tokens),
 * the workers' log-prob (0 on prompt tokens) and the weight version that sampled it (0 on
 * prompt tokens). */
uint64_t treepo_batch_step(const treepo_batch* batch);
int64_t treepo_batch_num_sequences(const treepo_batch* batch);
int64_t treepo_batch_num_tokens(const treepo_batch* batch);
const int64_t* treepo_batch_offsets(const treepo_batch* batch);     /* [sequences + 1] */
const int32_t* treepo_batch_prompt_lens(const treepo_batch* batch); /* [sequences] */
const int32_t* treepo_batch_trees(const treepo_batch* batch);       /* [sequences] tree index */
const float* treepo_batch_rewards(const treepo_batch* batch);       /* [sequences] */
const int32_t* treepo_batch_tokens(const treepo_batch* batch);      /* [tokens] */
const float* treepo_batch_advantages(const treepo_batch* batch);    /* [tokens] */
const float* treepo_batch_logprobs(const treepo_batch* batch);      /* [tokens] */
const uint64_t* treepo_batch_versions(const treepo_batch* batch);   /* [tokens] */
/* The raw trees (to compute advantages yourself): one JSON line per tree in the format of
 * docs/tree-format.md (prompt tokens, nodes with parent, tokens, log-probs, weight version;
 * leaves with reward). */
int64_t treepo_batch_num_trees(const treepo_batch* batch);
const char* treepo_batch_trees_jsonl(const treepo_batch* batch);
void treepo_batch_free(treepo_batch* batch);

#ifdef __cplusplus
}
#endif

#endif /* TREEPO_CLIENT_H_ */
