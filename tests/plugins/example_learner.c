/* Example learner plug-in (docs/plugins.md), in plain C against treepo_plugin.h only.
 *
 * "reinforce_sgd": REINFORCE with plain SGD. The loss over the step's batch (every rank's
 * shard together) is L = -(1/N) sum_t A_t logp_t, N the batch's response tokens and A_t the
 * estimator's advantage of token t; its gradient is the host's backward with
 * coeff_t = -A_t / N, and the update is w -= lr * g for every weight.
 *
 * Settings (learner.algorithm_options): "" or "lr=<float > 0>"; the default learning rate is
 * EXAMPLE_LEARNER_DEFAULT_LR. Its state across steps is the count of steps it took, saved in
 * the checkpoint as EXAMPLE_LEARNER_STATE_FILE (an optimiser with moments would save those). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/plugin/treepo_plugin.h"

#define EXAMPLE_LEARNER_DEFAULT_LR 0.01
#define EXAMPLE_LEARNER_STATE_FILE "reinforce_sgd_state.txt"

typedef struct Instance {
  double lr;
  int64_t steps;
} Instance;

static void SetError(char* error, size_t cap, const char* message, TreepoText detail) {
  snprintf(error, cap, "%s'%.*s'", message, (int)detail.size, detail.data);
}

static int Create(void* state, const TreepoLearnerInit* init, void** instance) {
  (void)state;
  double lr = EXAMPLE_LEARNER_DEFAULT_LR;
  const TreepoText s = init->settings;
  if (s.size > 0) {
    char buf[64];
    char* end = NULL;
    if (s.size < 4 || s.size >= sizeof(buf) || strncmp(s.data, "lr=", 3) != 0) {
      SetError(init->error, init->error_cap, "unknown setting (known: lr=<float > 0>): ", s);
      return 1;
    }
    memcpy(buf, s.data + 3, s.size - 3);
    buf[s.size - 3] = '\0';
    lr = strtod(buf, &end);
    if (end == buf || *end != '\0' || !(lr > 0.0) || !isfinite(lr)) {
      SetError(init->error, init->error_cap, "lr must be a number > 0, got ", s);
      return 2;
    }
  }
  Instance* in = (Instance*)calloc(1, sizeof(Instance));
  if (in == NULL) return 3;
  in->lr = lr;
  *instance = in;
  return 0;
}

static void Destroy(void* instance) { free(instance); }

static int Step(void* instance, const TreepoLearnerStep* ctx) {
  Instance* in = (Instance*)instance;
  const size_t n = ctx->n_tokens;
  double totals[2] = {(double)n, 0.0}; /* tokens, sum of A_t logp_t: this rank's, then all */
  float* logp = (float*)malloc((n > 0 ? n : 1) * sizeof(float));
  float* coeff = (float*)malloc((n > 0 ? n : 1) * sizeof(float));
  float** grads = (float**)malloc((ctx->n_tensors > 0 ? ctx->n_tensors : 1) * sizeof(float*));
  double local_sum = 0.0;
  int rc = (logp == NULL || coeff == NULL || grads == NULL) ? 1 : 0;
  if (rc == 0 && ctx->forward(ctx, logp) != 0) rc = 2;
  if (rc == 0) {
    size_t t = 0;
    for (size_t i = 0; i < ctx->n_sequences; ++i) {
      const TreepoLearnerSequence* s = &ctx->sequences[i];
      for (int32_t j = 0; j < s->n_tokens - s->prompt_len; ++j, ++t) {
        totals[1] += (double)s->advantages[j] * logp[t];
      }
    }
    local_sum = totals[1];
    if (ctx->all_reduce_sum(ctx, totals, 2) != 0) rc = 3;
  }
  /* totals[0] is the same on every rank, so every rank calls backward alike (or none does). */
  if (rc == 0 && totals[0] > 0) {
    size_t t = 0;
    for (size_t i = 0; i < ctx->n_sequences; ++i) {
      const TreepoLearnerSequence* s = &ctx->sequences[i];
      for (int32_t j = 0; j < s->n_tokens - s->prompt_len; ++j, ++t) {
        coeff[t] = (float)(-s->advantages[j] / totals[0]);
      }
    }
    if (ctx->backward(ctx, coeff, grads) != 0) rc = 4;
  }
  if (rc == 0 && totals[0] > 0) {
    double norm2 = 0.0;
    for (size_t k = 0; k < ctx->n_tensors; ++k) {
      float* w = ctx->tensors[k].data;
      const float* g = grads[k];
      for (size_t e = 0; e < ctx->tensors[k].numel; ++e) {
        norm2 += (double)g[e] * g[e];
        w[e] -= (float)(in->lr * g[e]);
      }
    }
    ctx->metrics->loss = -local_sum / totals[0]; /* the host sums the ranks' parts */
    ctx->metrics->grad_norm = sqrt(norm2);
    ctx->metrics->optimizer_steps = 1;
  }
  if (rc == 0) {
    ctx->metrics->lr = in->lr;
    ++in->steps;
  } else if (rc == 1) {
    snprintf(ctx->error, ctx->error_cap, "out of memory");
  }
  free(logp);
  free(coeff);
  free(grads);
  return rc;
}

static int StatePath(const char* dir, char* path, size_t cap) {
  return snprintf(path, cap, "%s/%s", dir, EXAMPLE_LEARNER_STATE_FILE) < (int)cap ? 0 : 1;
}

static int SaveState(void* instance, const char* dir) {
  char path[4096];
  if (StatePath(dir, path, sizeof(path)) != 0) return 1;
  FILE* f = fopen(path, "w");
  if (f == NULL) return 2;
  const int ok = fprintf(f, "steps %lld\n", (long long)((Instance*)instance)->steps) > 0;
  return fclose(f) == 0 && ok ? 0 : 3;
}

static int LoadState(void* instance, const char* dir) {
  char path[4096];
  long long steps = 0;
  if (StatePath(dir, path, sizeof(path)) != 0) return 1;
  FILE* f = fopen(path, "r");
  if (f == NULL) return 2;
  const int ok = fscanf(f, "steps %lld", &steps) == 1 && steps >= 0;
  fclose(f);
  if (!ok) return 3;
  ((Instance*)instance)->steps = steps;
  return 0;
}

uint32_t treepo_plugin_abi_version(void) { return TREEPO_PLUGIN_ABI_VERSION; }

int treepo_plugin_init(const TreepoPluginApi* api) {
  if (api->abi_version != TREEPO_PLUGIN_ABI_VERSION) return 1;
  const TreepoLearnerPlugin learner = {"reinforce_sgd", NULL,     Create, Destroy, Step,
                                       SaveState,       LoadState};
  if (api->register_learner(api->host, &learner) != 0) return 2;
  api->log(api->host, "reinforce_sgd learner ready (REINFORCE, plain SGD)");
  return 0;
}
