/* Example advantage estimator plug-in (docs/plugins.md), in plain C against treepo_plugin.h
 * only.
 *
 * "centered_return": each leaf's reward minus the mean reward of its query's leaves, then the
 * learner's batch whitening over response tokens (whiten = 1). */
#include "common/plugin/treepo_plugin.h"

static void Compute(void* state, const TreepoQuery* query, double* advantages) {
  (void)state;
  double sum = 0.0;
  for (size_t i = 0; i < query->n_leaves; ++i) sum += query->leaves[i].reward;
  const double mean = sum / (double)query->n_leaves;
  for (size_t i = 0; i < query->n_leaves; ++i) advantages[i] = query->leaves[i].reward - mean;
}

uint32_t treepo_plugin_abi_version(void) { return TREEPO_PLUGIN_ABI_VERSION; }

int treepo_plugin_init(const TreepoPluginApi* api) {
  if (api->abi_version != TREEPO_PLUGIN_ABI_VERSION) return 1;
  const TreepoEstimatorPlugin estimator = {"centered_return", NULL, Compute, 1};
  return api->register_estimator(api->host, &estimator) != 0 ? 2 : 0;
}
