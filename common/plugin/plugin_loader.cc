#include "common/plugin/plugin_loader.h"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>
#include <set>

#include "common/log.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;

// The state behind TreepoPluginApi::host while one library's init runs.
struct InitContext {
  const PluginHost* host = nullptr;
  std::string library;
  std::string last_error;
  Status first_refusal;
};

template <typename Desc>
int Register(void* h, const Desc* d, const std::function<Status(const Desc&)>& hook,
             const char* kind) {
  auto* ctx = static_cast<InitContext*>(h);
  Status st;
  if (d == nullptr || d->name == nullptr || d->name[0] == '\0') {
    st = InvalidArgument(std::string(kind) + " without a name");
  } else if (!hook) {
    st = FailedPrecondition(std::string("this process does not host ") + kind + "s");
  } else {
    st = hook(*d);
  }
  if (st.ok()) {
    spdlog::info("plugin {}: registered {} '{}'", ctx->library, kind, d->name);
    ctx->last_error.clear();
    return 0;
  }
  ctx->last_error = st.message();
  if (ctx->first_refusal.ok()) ctx->first_refusal = st;
  return 1;
}

int RegisterReward(void* h, const TreepoRewardPlugin* d) {
  return Register(h, d, static_cast<InitContext*>(h)->host->reward, "reward");
}
int RegisterEstimator(void* h, const TreepoEstimatorPlugin* d) {
  return Register(h, d, static_cast<InitContext*>(h)->host->estimator, "advantage estimator");
}
int RegisterStopRule(void* h, const TreepoStopRulePlugin* d) {
  return Register(h, d, static_cast<InitContext*>(h)->host->stop_rule, "stop rule");
}
int RegisterBranching(void* h, const TreepoBranchingPlugin* d) {
  return Register(h, d, static_cast<InitContext*>(h)->host->branching, "branching policy");
}
int RegisterSampler(void* h, const TreepoSamplerPlugin* d) {
  return Register(h, d, static_cast<InitContext*>(h)->host->sampler, "token sampler");
}
int RegisterLearner(void* h, const TreepoLearnerPlugin* d) {
  return Register(h, d, static_cast<InitContext*>(h)->host->learner, "learner algorithm");
}
const char* LastError(void* h) { return static_cast<InitContext*>(h)->last_error.c_str(); }
void Log(void* h, const char* message) {
  spdlog::info("plugin {}: {}", static_cast<InitContext*>(h)->library,
               message != nullptr ? message : "");
}

std::mutex& LoadMutex() {
  static std::mutex mu;
  return mu;
}
std::set<std::string>& Loaded() {  // canonical paths; guarded by LoadMutex()
  static std::set<std::string> loaded;
  return loaded;
}

Status LoadOne(const std::string& path, const PluginHost& host) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("plugin " + path + ": no such file");
  if (!fs::is_regular_file(path, ec)) {
    return FailedPrecondition("plugin " + path + ": not a regular file");
  }
  const std::string canonical = fs::canonical(path, ec).string();
  if (Loaded().count(canonical)) return OkStatus();
  // A path without a slash would make dlopen search the library path instead of this file.
  const std::string open_path = canonical.empty() ? path : canonical;
  void* lib = dlopen(open_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    return FailedPrecondition("plugin " + path +
                              ": cannot load: " + (why != nullptr ? why : "unknown dlopen error"));
  }
  auto version_fn =
      reinterpret_cast<TreepoPluginAbiVersionFn>(dlsym(lib, "treepo_plugin_abi_version"));
  auto init_fn = reinterpret_cast<TreepoPluginInitFn>(dlsym(lib, "treepo_plugin_init"));
  if (version_fn == nullptr || init_fn == nullptr) {
    dlclose(lib);
    return FailedPrecondition(
        "plugin " + path +
        ": not a treepo plug-in (needs extern \"C\" treepo_plugin_abi_version and "
        "treepo_plugin_init; see docs/plugins.md)");
  }
  const uint32_t version = version_fn();
  if (version != TREEPO_PLUGIN_ABI_VERSION) {
    dlclose(lib);
    return FailedPrecondition("plugin " + path + ": built for plug-in ABI version " +
                              std::to_string(version) + ", this treepo has version " +
                              std::to_string(TREEPO_PLUGIN_ABI_VERSION) + "; rebuild it against " +
                              "this treepo's treepo_plugin.h");
  }
  InitContext ctx;
  ctx.host = &host;
  ctx.library = path;
  TreepoPluginApi api{};
  api.abi_version = TREEPO_PLUGIN_ABI_VERSION;
  api.host = &ctx;
  api.register_reward = &RegisterReward;
  api.register_estimator = &RegisterEstimator;
  api.register_stop_rule = &RegisterStopRule;
  api.register_branching = &RegisterBranching;
  api.register_sampler = &RegisterSampler;
  api.register_learner = &RegisterLearner;
  api.last_error = &LastError;
  api.log = &Log;
  const int rc = init_fn(&api);
  // Registrations made before a failure stay (their factories refer into the library), so the
  // library stays loaded either way.
  Loaded().insert(canonical);
  if (!ctx.first_refusal.ok()) {
    return InvalidArgument("plugin " + path + ": " + ctx.first_refusal.message());
  }
  if (rc != 0) {
    return InvalidArgument("plugin " + path + ": treepo_plugin_init failed with code " +
                           std::to_string(rc));
  }
  return OkStatus();
}

}  // namespace

std::vector<std::string> SplitCommaList(std::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = list.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

Status LoadPlugins(const std::vector<std::string>& paths, const PluginHost& host) {
  std::lock_guard<std::mutex> lock(LoadMutex());
  for (const std::string& p : paths) TREEPO_RETURN_IF_ERROR(LoadOne(p, host));
  return OkStatus();
}

}  // namespace treepo
