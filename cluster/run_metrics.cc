#include "cluster/run_metrics.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/file_io.h"
#include "common/log.h"

namespace treepo::cluster {

Result<ReconciledMetrics> ReconcileMetricsForResume(const std::string& path, int64_t resume_step) {
  ReconciledMetrics r;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return r;
  TREEPO_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path, "metrics file"));
  std::string kept;
  std::set<int64_t> steps;       // step lines kept
  std::set<int64_t> eval_steps;  // eval lines kept
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) {
      spdlog::warn("{}: dropping a line that is not a metrics record (a torn write?)", path);
      ++r.dropped_lines;
      continue;
    }
    const int64_t step = j["step"].get<int64_t>();
    std::set<int64_t>& seen = j.contains("eval") ? eval_steps : steps;
    if (step >= resume_step || !seen.insert(step).second) {
      ++r.dropped_lines;
      continue;
    }
    kept += line + "\n";
    ++r.kept_lines;
  }
  if (!steps.empty()) {
    for (int64_t s = *steps.begin(); s < resume_step; ++s) {
      if (steps.count(s) == 0) {
        return FailedPrecondition(path + " has no line for step " + std::to_string(s) +
                                  ": a resume at step " + std::to_string(resume_step) +
                                  " would leave a gap; resume from a checkpoint of step " +
                                  "<= " + std::to_string(s) + " instead");
      }
    }
  } else if (resume_step > 0) {
    spdlog::warn("{} records no step before {}: the resumed run's lines start there", path,
                 resume_step);
  }
  if (r.dropped_lines > 0) TREEPO_RETURN_IF_ERROR(WriteFileAtomically(path, kept));
  return r;
}

}  // namespace treepo::cluster
