/* Plug-ins that the loader must refuse, one per build (BAD_KIND picks which):
 *   1  built for another ABI version
 *   2  init registers a reward under a built-in's name ("math")
 *   3  init reports failure without registering anything
 *   4  no entry points at all (an ordinary shared library)
 *   5  built for ABI version 1 (before learner plug-ins) */
#include "common/plugin/treepo_plugin.h"

#if BAD_KIND == 4
int not_a_treepo_plugin(void) { return 4; }
#else
static void Score(void* state, TreepoText response, TreepoText reference, int32_t tokens,
                  TreepoRewardOutput* out) {
  (void)state, (void)response, (void)reference, (void)tokens;
  out->reward = 0.0f;
}

uint32_t treepo_plugin_abi_version(void) {
#if BAD_KIND == 1
  return TREEPO_PLUGIN_ABI_VERSION + 1;
#elif BAD_KIND == 5
  return 1;
#else
  return TREEPO_PLUGIN_ABI_VERSION;
#endif
}

int treepo_plugin_init(const TreepoPluginApi* api) {
#if BAD_KIND == 2
  const TreepoRewardPlugin reward = {"math", NULL, Score};
  return api->register_reward(api->host, &reward) != 0 ? 3 : 0;
#else
  (void)api;
  (void)Score;
  return 7;
#endif
}
#endif
