#include "cluster/launch/slurm.h"

#include <filesystem>

#include "cluster/child_process.h"
#include "cluster/launch/cluster_run.h"
#include "cluster/launch/launcher.h"

namespace treepo::cluster {

std::string RenderSbatch(const ClusterSpec& spec, const ClusterUpOptions& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string workdir = fs::current_path(ec).string();
  const std::string log = (fs::path(spec.run_dir) / "logs" / "slurm-%j.log").string();
  std::string s = "#!/bin/sh\n";
  s += "# treepo cluster '" + spec.name + "' from " + spec.path + " (treepo cluster up)\n";
  s += "#SBATCH --job-name=" + spec.name + "\n";
  s += "#SBATCH --nodes=" + std::to_string(spec.hosts.size()) + "\n";
  s += "#SBATCH --ntasks-per-node=1\n";
  s += "#SBATCH --time=" + spec.slurm.time + "\n";
  s += "#SBATCH --output=" + log + "\n";
  s += "#SBATCH --chdir=" + workdir + "\n";
  if (!spec.slurm.partition.empty()) s += "#SBATCH --partition=" + spec.slurm.partition + "\n";
  if (!spec.slurm.account.empty()) s += "#SBATCH --account=" + spec.slurm.account + "\n";
  if (spec.slurm.cpus_per_node > 0) {
    s += "#SBATCH --cpus-per-task=" + std::to_string(spec.slurm.cpus_per_node) + "\n";
  }
  size_t start = 0;
  const std::string& extra = spec.slurm.extra;
  while (start < extra.size()) {
    size_t comma = extra.find(',', start);
    if (comma == std::string::npos) comma = extra.size();
    std::string item = extra.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    if (!item.empty()) s += "#SBATCH " + item + "\n";
    start = comma + 1;
  }
  std::vector<std::string> argv = {spec.binary.empty() ? SelfExecutable() : spec.binary, "cluster",
                                   "up", o.file};
  for (const std::string& x : o.sets) {
    argv.push_back("--set");
    argv.push_back(x);
  }
  if (!o.train_config.empty()) {
    argv.push_back("--config");
    argv.push_back(o.train_config);
  }
  for (const std::string& x : o.train_sets) {
    argv.push_back("--train-set");
    argv.push_back(x);
  }
  s += "mkdir -p " + ShellQuote((fs::path(spec.run_dir) / "logs").string()) + "\n";
  s += "exec srun --ntasks-per-node=1 --kill-on-bad-exit=0 " + ShellJoin(argv) + "\n";
  return s;
}

}  // namespace treepo::cluster
