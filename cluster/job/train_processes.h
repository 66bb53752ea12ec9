// The command lines of a `train` run's processes: `treepo worker`, `treepo learner` (or the
// configured outside learner command), built from the run's options so that every launcher
// starts the same processes.
#pragma once

#include <string>
#include <vector>

#include "cluster/job/train_options.h"

namespace treepo::cluster {

// What a process needs besides the options: the scheduler it serves, the model it starts from,
// CURVE key flags (LocalCurveKeys::WorkerFlags/LearnerFlags, or empty) and plug-in paths.
struct ProcessContext {
  std::string executable;  // the `treepo` binary
  std::string endpoint;    // the scheduler's
  std::string start_model;
  std::vector<std::string> worker_key_flags;
  std::vector<std::string> learner_key_flags;
  std::vector<std::string> plugins;
};

// `treepo worker ...` for the worker called `name`.
std::vector<std::string> WorkerArgv(const TrainJobOptions& o, const ProcessContext& c,
                                    const std::string& name);

// The learner of rank `rank` with learner options `lo` (o.learner with the run's rank and
// rendezvous): `treepo learner ...`, or `env TREEPO_*=... /bin/sh -c COMMAND` when
// cluster.learner_command is set (docs/external-learner.md).
std::vector<std::string> LearnerArgv(const TrainJobOptions& o, const learner::LearnerOptions& lo,
                                     const ProcessContext& c, int rank);

// The worker processes' names: worker-1 ... worker-N (their logs are logs/NAME.log).
std::string WorkerName(int index);  // index from 0
// The learner processes' names: "learner", or learner-0 ... learner-(N-1).
std::vector<std::string> LearnerNames(int learners);

}  // namespace treepo::cluster
