// The Slurm launcher's batch script: one task per node (`srun --ntasks-per-node=1`), each
// running `treepo cluster up FILE`, which inside the allocation reads SLURM_PROCID and
// SLURM_JOB_NODELIST to take its role (task 0: the head and the first host's processes; task
// k: the k-th host's processes).
#pragma once

#include <string>

#include "cluster/launch/cluster_spec.h"

namespace treepo::cluster {

struct ClusterUpOptions;

// The sbatch script for `spec`: #SBATCH lines from [slurm], the job's name, one node per host.
std::string RenderSbatch(const ClusterSpec& spec, const ClusterUpOptions& o);

}  // namespace treepo::cluster
