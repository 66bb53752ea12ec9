#include "learner/service/learner_algorithm.h"

#include <utility>

#include "common/check.h"
#include "common/compute/decoder_backend.h"
#include "learner/service/plugin_learner.h"
#include "learner/service/trainer.h"
#include "learner/train_backend.h"

namespace treepo::learner {
namespace {

Result<std::unique_ptr<LearnerAlgorithm>> MakePpoClip(model::ModelWeights weights,
                                                      const LearnerAlgorithmOptions& o) {
  if (!o.settings.empty()) {
    return InvalidArgument(
        std::string("learner.algorithm_options: the built-in '") + kDefaultLearnerAlgorithm +
        "' takes none (its settings are the learner.* keys); got '" + o.settings + "'");
  }
  TrainerOptions to = *o.trainer;
  to.device = RankDevice(to.device, o.rank, compute::CudaDeviceCount());
  TREEPO_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> t,
                          Trainer::Create(std::move(weights), to, o.version));
  return std::unique_ptr<LearnerAlgorithm>(std::move(t));
}

}  // namespace

LearnerRegistry& Learners() {
  static LearnerRegistry* registry = [] {
    auto* r = new LearnerRegistry("learner algorithm");
    TREEPO_CHECK_OK(r->Register(kDefaultLearnerAlgorithm, MakePpoClip));
    return r;
  }();
  return *registry;
}

Status RegisterLearnerPlugin(const TreepoLearnerPlugin& plugin) {
  const std::string name = plugin.name;
  if (plugin.create == nullptr || plugin.step == nullptr) {
    return InvalidArgument("learner algorithm '" + name + "': needs create and step functions");
  }
  return Learners().Register(
      name,
      [plugin, name](model::ModelWeights weights, const LearnerAlgorithmOptions& o)
          -> Result<std::unique_ptr<LearnerAlgorithm>> {
        return PluginLearner::Create(plugin, name, std::move(weights), o);
      });
}

Result<std::unique_ptr<LearnerAlgorithm>> MakeLearnerAlgorithm(std::string_view name,
                                                               model::ModelWeights weights,
                                                               const LearnerAlgorithmOptions& o) {
  if (o.trainer == nullptr) return InvalidArgument("learner algorithm: no trainer options");
  return Learners().Make(name, std::move(weights), o);
}

}  // namespace treepo::learner
