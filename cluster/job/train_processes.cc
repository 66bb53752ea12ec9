#include "cluster/job/train_processes.h"

#include "cluster/plugins.h"

namespace treepo::cluster {

std::vector<std::string> WorkerArgv(const TrainJobOptions& o, const ProcessContext& c,
                                    const std::string& name) {
  const TrainOptions& t = o.train;
  std::vector<std::string> argv = {c.executable,  "worker",
                                   "--scheduler", c.endpoint,
                                   "--model",     c.start_model,
                                   "--threads",   std::to_string(t.worker_threads),
                                   "--pages",     std::to_string(t.worker_pages),
                                   "--page-size", std::to_string(t.page_size),
                                   "--name",      name};
  if (t.worker_rejoin_timeout_ms > 0) {
    argv.push_back("--rejoin-timeout-ms");
    argv.push_back(std::to_string(t.worker_rejoin_timeout_ms));
  }
  for (const std::string& f : c.worker_key_flags) argv.push_back(f);
  argv.push_back("--sampler");
  argv.push_back(t.worker_sampler);
  argv.push_back("--backend");
  argv.push_back(t.worker_backend);
  for (const std::string& p : c.plugins) {
    argv.push_back("--plugin");
    argv.push_back(p);
  }
  return argv;
}

namespace {

// `env VAR=... /bin/sh -c COMMAND` for an outside learner of rank `rank`: what it needs to
// serve this run (docs/external-learner.md).
std::vector<std::string> LearnerCommandArgv(const TrainJobOptions& o,
                                            const learner::LearnerOptions& lo,
                                            const ProcessContext& c, int rank) {
  const TrainOptions& t = o.train;
  std::vector<std::string> argv = {
      "/usr/bin/env",
      "TREEPO_SCHEDULER=" + c.endpoint,
      "TREEPO_MODEL=" + c.start_model,
      "TREEPO_CHECKPOINT_DIR=" + lo.checkpoint_dir,
      "TREEPO_RANK=" + std::to_string(rank),
      "TREEPO_WORLD_SIZE=" + std::to_string(t.learners),
      "TREEPO_ESTIMATOR=" + lo.estimator,
      "TREEPO_LR=" + std::to_string(lo.trainer.adamw.lr),
      "TREEPO_WARMUP_STEPS=" + std::to_string(lo.trainer.adamw.warmup_steps),
      "TREEPO_THREADS=" + std::to_string(t.learner_threads)};
  // Data-parallel ranks meet in a file of the run's rendezvous directory (torch.distributed's
  // file:// init in examples/torch_learner.py).
  if (t.learners > 1) {
    argv.push_back("TREEPO_RENDEZVOUS=" + lo.collective_store + "/" + lo.collective_run_id +
                   ".torch");
  }
  const std::vector<std::string>& key_flags = c.learner_key_flags;
  for (size_t i = 0; i + 1 < key_flags.size(); i += 2) {
    if (key_flags[i] == "--scheduler-key")
      argv.push_back("TREEPO_SCHEDULER_KEY=" + key_flags[i + 1]);
    if (key_flags[i] == "--key") argv.push_back("TREEPO_KEY=" + key_flags[i + 1]);
  }
  for (const char* s : {"/bin/sh", "-c"}) argv.push_back(s);
  argv.push_back(t.learner_command);
  return argv;
}

}  // namespace

std::vector<std::string> LearnerArgv(const TrainJobOptions& o, const learner::LearnerOptions& lo,
                                     const ProcessContext& c, int rank) {
  if (!o.train.learner_command.empty()) return LearnerCommandArgv(o, lo, c, rank);
  std::vector<std::string> argv = {c.executable, "learner", "--scheduler", c.endpoint};
  for (const std::string& f : c.learner_key_flags) argv.push_back(f);
  for (const std::string& s : learner::LearnerOptionSets(lo)) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  if (!c.plugins.empty()) {
    argv.push_back("--set");
    argv.push_back("plugins=" + JoinPluginList(c.plugins));
  }
  return argv;
}

std::vector<ProcessSpec> PlanProcesses(const TrainJobOptions& o, const learner::LearnerOptions& lo,
                                       const ProcessContext& c,
                                       const std::vector<HostPlacement>& hosts,
                                       const std::string& logs_dir) {
  std::vector<ProcessSpec> out;
  int total_learners = 0;
  for (const HostPlacement& h : hosts) total_learners += h.learners;
  const std::vector<std::string> learner_names = LearnerNames(total_learners);
  int worker = 0;
  int rank = 0;
  for (const HostPlacement& h : hosts) {
    TrainJobOptions ho = o;
    if (h.worker_threads > 0) ho.train.worker_threads = h.worker_threads;
    if (h.worker_pages > 0) ho.train.worker_pages = h.worker_pages;
    for (int i = 0; i < h.workers; ++i, ++worker) {
      ProcessSpec p;
      p.name = WorkerName(worker);
      p.role = "worker";
      p.host = h.host;
      p.address = h.address;
      p.argv = WorkerArgv(ho, c, p.name);
      p.log_path = logs_dir + "/" + p.name + ".log";
      out.push_back(std::move(p));
    }
    for (int i = 0; i < h.learners; ++i, ++rank) {
      learner::LearnerOptions ro = lo;
      ro.rank = rank;
      if (total_learners > 1) ro.name = learner_names[rank];
      ProcessSpec p;
      p.name = learner_names[rank];
      p.role = "learner";
      p.host = h.host;
      p.address = h.address;
      p.argv = LearnerArgv(o, ro, c, rank);
      p.log_path = logs_dir + "/" + p.name + ".log";
      out.push_back(std::move(p));
    }
  }
  return out;
}

std::string WorkerName(int index) { return "worker-" + std::to_string(index + 1); }

std::vector<std::string> LearnerNames(int learners) {
  if (learners == 1) return {"learner"};
  std::vector<std::string> out;
  for (int r = 0; r < learners; ++r) out.push_back("learner-" + std::to_string(r));
  return out;
}

}  // namespace treepo::cluster
