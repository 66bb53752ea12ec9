// metrics.jsonl of a `treepo train` run: one JSON object a line, a step line per RL step
// ({"step": N, ...}) and eval lines ({"step": N, "eval": {...}}).
//
// A run resumed from the checkpoint of step S continues the file: ReconcileMetricsForResume
// keeps the lines of steps < S (each step once; a torn last line of a killed run dropped),
// drops the rest, and refuses a file that lacks a step line before S, since the resumed run
// could never write it. The learner writes a checkpoint only after the scheduler has recorded
// the step before it (learner/service/learner_service.h), so a checkpoint of the same run
// always passes.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace treepo::cluster {

struct ReconciledMetrics {
  int64_t kept_lines = 0;
  int64_t dropped_lines = 0;  // steps >= S, repeats and torn lines
};

// Rewrites `path` (atomically) to hold the lines of steps < resume_step. A missing file is
// fine (a resume into a new out_dir starts one). kFailedPrecondition when a step line in
// [first recorded step, resume_step) is missing, naming the newest step it could resume at.
Result<ReconciledMetrics> ReconcileMetricsForResume(const std::string& path, int64_t resume_step);

}  // namespace treepo::cluster
