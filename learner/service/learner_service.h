// The learner process (`treepo learner`): one thread owns a Dealer connected to the scheduler
// and a learner algorithm (by name, learner_algorithm.h; the built-in Trainer by default). It
// registers (RegisterLearner, retried until RegisterAck), publishes its current weights once (so
// every worker starts from the learner's version, e.g. after a resume), then for each TreeBatch:
// advantages (estimator by name), training step, publish version v+1 (WeightVersionNotice +
// WeightChunks, relayed by the scheduler to every worker), TrainDone {step, v+1, metrics}.
// Shutdown, or *stop, ends it after a final checkpoint of any step not yet saved (on *stop only
// with checkpoint_on_signal).
//
// Data parallel (world_size > 1): every rank registers with the scheduler, which sends each
// rank its shard of every step's trees; the ranks meet through a Collective (collective_*
// keys) that reduces the advantage whitening, the loss's token count, the gradient and the
// metrics. Rank 0 alone publishes weights, sends TrainDone and writes checkpoints; with
// check_weights every step also checks that all ranks hold the same weights (a hash). A step
// that fails on one rank ends every rank (they cannot stay in step).
//
// Checkpoints follow the scheduler's record of the run: the checkpoint of step S (the state
// after training batch S-1) that checkpoint_every asks for is written when the next message
// from the scheduler arrives (TreeBatch S or Shutdown), not when TrainDone S-1 leaves. The
// scheduler of `treepo train` sends those only after it has appended step S-1's metrics line
// (sync mode), so a `train` killed at any moment leaves no checkpoint ahead of its
// metrics.jsonl, and a resume continues the file without a gap.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "learner/service/learner_algorithm.h"
#include "learner/service/trainer.h"
#include "protocols/curve_keys.h"

namespace treepo::learner {

// Config keys are the names in the comments (LoadLearnerOptions; `treepo train` reads them
// under "learner.").
struct LearnerOptions {
  std::string scheduler_endpoint;  // "tcp://HOST:PORT" (the --scheduler flag)
  std::string name;                // name: "" = "learner-<pid>"
  std::string model_path;          // model: initial weights (HF dir or llama2.c .bin)
  std::string resume_dir;          // resume: a checkpoint dir; overrides model, restores step
  std::string checkpoint_dir;      // checkpoint_dir: root of step_N dirs; "" = no checkpoints
  int checkpoint_every = 0;        // checkpoint_every: steps between checkpoints (0 = end only)
  // checkpoint_on_signal: a stop by SIGINT/SIGTERM (*stop) writes a final checkpoint. `treepo
  // train` sets it false: there the learner gets SIGTERM when `train` dies (the scheduler has
  // then not recorded the last step) and a Ctrl-C reaches it too; `train` ends it by Shutdown.
  bool checkpoint_on_signal = true;
  std::string estimator = "treepo";  // estimator: advantage estimator name
  // algorithm: the learner algorithm by name (learner_algorithm.h): "ppo_clip" (the built-in
  // Trainer) or a plug-in's; algorithm_options: its settings, handed to it verbatim.
  std::string algorithm = kDefaultLearnerAlgorithm;
  std::string algorithm_options;
  int64_t weight_chunk_bytes = 1 << 20;  // weight_chunk_bytes: bytes per WeightChunk
  int blas_threads = 0;                  // blas_threads: 0 = leave OpenBLAS's setting
  int rank = 0;                          // rank: this learner's data-parallel rank
  int world_size = 1;                    // world_size: data-parallel learner ranks
  // Data-parallel collectives (world_size > 1; common/collective/collective.h).
  std::string collective_backend = "gloo";    // collective_backend: gloo | nccl
  std::string collective_store;               // collective_store: rendezvous dir every rank reaches
  std::string collective_run_id;              // collective_run_id: the same on every rank of a run
  std::string collective_host = "127.0.0.1";  // collective_host: address this rank binds
  int collective_timeout_ms = 300000;         // collective_timeout_ms: per collective
  // check_weights: after every step, check that all ranks hold identical weights (a hash
  // compared over the collective). On in debug builds.
#ifdef NDEBUG
  bool check_weights = false;
#else
  bool check_weights = true;
#endif
  int register_timeout_ms = 30000;  // register_timeout_ms: give up registering after this
  // scheduler_timeout_ms: once the scheduler has answered a heartbeat, its silence for this
  // long means its head is gone (a `train` that died): the learner exits rather than outlive
  // it; a resumed run starts a learner of its own from the newest checkpoint. 0: never.
  int scheduler_timeout_ms = 30000;
  // lr, warmup_steps, weight_decay, beta1, beta2, adam_eps, max_grad_norm, eps_low, eps_high,
  // dual_clip, kl_coef, entropy_coef, mini_batch_queries, epochs, micro_batch_tokens,
  // max_staleness.
  TrainerOptions trainer;
  // CURVE keys (--scheduler-key, --key, --insecure; docs/security.md): required when the
  // scheduler is not on loopback.
  protocols::ClientKeyOptions keys;

  Status Validate() const;
};

// Reads every key above under `prefix` (absent keys keep their value). Does not check for
// unknown keys (the caller does, once every component read its keys).
Status LoadLearnerOptions(const Config& config, const std::string& prefix, LearnerOptions* o);
// "key=value" for every key above (no prefix), for `treepo learner --set`.
std::vector<std::string> LearnerOptionSets(const LearnerOptions& o);

// Runs until Shutdown or *stop (OkStatus) or a fatal error (model load, registration refused
// or timed out, a fenced registration, a scheduler that does not know this learner (another
// head on its endpoint: kNotFound) or is silent past scheduler_timeout_ms (kUnavailable)).
// `stop` may be null.
Status RunLearner(const LearnerOptions& options, std::atomic<bool>* stop);

}  // namespace treepo::learner
