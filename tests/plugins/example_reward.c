/* Example reward plug-in (docs/plugins.md), in plain C against treepo_plugin.h only.
 *
 * "boxed_exact": the content of the response's last \boxed{...} (balanced braces) compared
 * byte for byte with the reference answer, both trimmed of spaces: +1 when equal, 0 when a box
 * holds something else, -1 when there is no box.
 *
 * "short_response": a length penalty alone, -(response bytes) / 256 floored at -1, so the
 * leaves of a tree differ in reward even when none is right (the learner tests use it). */
#include <string.h>

#include "common/plugin/treepo_plugin.h"

static int IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void Trim(const char** p, size_t* n) {
  while (*n > 0 && IsSpace((*p)[0])) ++*p, --*n;
  while (*n > 0 && IsSpace((*p)[*n - 1])) --*n;
}

/* Finds the last balanced \boxed{...}; returns 1 and its content's span, else 0. */
static int LastBoxed(TreepoText t, const char** content, size_t* size) {
  static const char kBoxed[] = "\\boxed{";
  const size_t k = sizeof(kBoxed) - 1;
  int found = 0;
  for (size_t i = 0; i + k <= t.size; ++i) {
    if (memcmp(t.data + i, kBoxed, k) != 0) continue;
    int level = 1;
    size_t j = i + k;
    for (; j < t.size && level > 0; ++j) {
      if (t.data[j] == '{') ++level;
      if (t.data[j] == '}') --level;
    }
    if (level != 0) continue;
    *content = t.data + i + k;
    *size = j - 1 - (i + k);
    found = 1;
  }
  return found;
}

static void Score(void* state, TreepoText response, TreepoText reference, int32_t response_tokens,
                  TreepoRewardOutput* out) {
  (void)state;
  (void)response_tokens;
  const char* box = NULL;
  size_t box_size = 0;
  if (!LastBoxed(response, &box, &box_size)) {
    out->reward = -1.0f;
    return;
  }
  const char* ref = reference.data;
  size_t ref_size = reference.size;
  Trim(&box, &box_size);
  Trim(&ref, &ref_size);
  const size_t copy = box_size < out->extracted_cap - 1 ? box_size : out->extracted_cap - 1;
  memcpy(out->extracted, box, copy);
  out->extracted[copy] = '\0';
  out->reward = box_size == ref_size && memcmp(box, ref, ref_size) == 0 ? 1.0f : 0.0f;
}

static void ScoreShort(void* state, TreepoText response, TreepoText reference,
                       int32_t response_tokens, TreepoRewardOutput* out) {
  (void)state, (void)reference, (void)response_tokens;
  const float r = -(float)response.size / 256.0f;
  out->reward = r < -1.0f ? -1.0f : r;
}

uint32_t treepo_plugin_abi_version(void) { return TREEPO_PLUGIN_ABI_VERSION; }

int treepo_plugin_init(const TreepoPluginApi* api) {
  if (api->abi_version != TREEPO_PLUGIN_ABI_VERSION) return 1;
  const TreepoRewardPlugin reward = {"boxed_exact", NULL, Score};
  if (api->register_reward(api->host, &reward) != 0) return 2;
  const TreepoRewardPlugin short_response = {"short_response", NULL, ScoreShort};
  if (api->register_reward(api->host, &short_response) != 0) return 3;
  api->log(api->host, "boxed_exact reward ready");
  return 0;
}
