#include "learner/service/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "common/atomic_file.h"
#include "common/file_io.h"
#include "common/json_number.h"
#include "common/log.h"
#include "common/model/safetensors.h"

namespace treepo::learner {

namespace fs = std::filesystem;

std::string CheckpointDir(const std::string& root, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step_%06lld", static_cast<long long>(step));
  return (fs::path(root) / name).string();
}

Status SaveCheckpoint(const std::string& dir, const LearnerAlgorithm& algorithm,
                      const CheckpointState& state, const std::string& companions_from) {
  const fs::path final_dir(dir);
  const fs::path tmp = final_dir.string() + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return InvalidArgument("cannot create " + tmp.string() + ": " + ec.message());
  TREEPO_RETURN_IF_ERROR(model::SaveHfModel(algorithm.weights(), tmp.string()));
  std::set<std::string> before;
  for (const auto& e : fs::directory_iterator(tmp, ec)) before.insert(e.path().filename());
  TREEPO_RETURN_IF_ERROR(algorithm.SaveState(tmp.string()));
  // The files the algorithm wrote: a checkpoint without one of them is incomplete.
  nlohmann::json files = nlohmann::json::array();
  for (const auto& e : fs::directory_iterator(tmp, ec)) {
    const std::string name = e.path().filename();
    if (!before.count(name) && e.is_regular_file(ec)) files.push_back(name);
  }
  nlohmann::json j{{"step", state.step},
                   {"version", state.version},
                   {"algorithm", std::string(algorithm.name())},
                   {"state_files", files}};
  if (state.prompts_drawn >= 0) j["prompts_drawn"] = state.prompts_drawn;
  TREEPO_RETURN_IF_ERROR(WriteFileAtomically((tmp / kStateFile).string(), j.dump() + "\n"));
  if (!companions_from.empty() && fs::is_directory(companions_from, ec)) {
    for (const char* name : kCompanionFiles) {
      const fs::path from = fs::path(companions_from) / name;
      if (!fs::is_regular_file(from, ec)) continue;
      TREEPO_ASSIGN_OR_RETURN(const std::string bytes,
                              ReadFileToString(from.string(), "checkpoint companion file"));
      TREEPO_RETURN_IF_ERROR(WriteFileAtomically((tmp / name).string(), bytes));
    }
  }
  TREEPO_RETURN_IF_ERROR(SyncDir(tmp.string()));
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) return DataLoss("cannot rename " + tmp.string() + " to " + dir + ": " + ec.message());
  const fs::path parent = final_dir.parent_path();
  return SyncDir(parent.empty() ? std::string(".") : parent.string());
}

Result<CheckpointState> ReadCheckpointState(const std::string& dir) {
  const fs::path path = fs::path(dir) / kStateFile;
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("no checkpoint state at " + path.string());
  TREEPO_ASSIGN_OR_RETURN(const std::string text,
                          ReadFileToString(path.string(), "checkpoint state"));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  const std::string bad = path.string() + " is not {\"step\": N >= 0, \"version\": V >= 0}";
  if (!j.is_object() || !j.contains("step") || !j.contains("version")) return DataLoss(bad);
  Result<int64_t> step = JsonToInt<int64_t>(j["step"], "step");
  Result<uint64_t> version = JsonToInt<uint64_t>(j["version"], "version");
  if (!step.ok() || !version.ok() || *step < 0) return DataLoss(bad);
  CheckpointState st;
  st.step = *step;
  st.version = *version;
  if (j.contains("prompts_drawn")) {
    Result<int64_t> drawn = JsonToInt<int64_t>(j["prompts_drawn"], "prompts_drawn");
    if (!drawn.ok() || *drawn < 0) {
      return DataLoss(path.string() + ": prompts_drawn is not an integer >= 0");
    }
    st.prompts_drawn = *drawn;
  }
  if (j.contains("algorithm")) {
    if (!j["algorithm"].is_string() || j["algorithm"].get<std::string>().empty()) {
      return DataLoss(path.string() + ": algorithm is not a name");
    }
    st.algorithm = j["algorithm"].get<std::string>();
  }
  if (j.contains("state_files")) {
    const nlohmann::json& files = j["state_files"];
    st.state_files.clear();
    bool ok = files.is_array();
    for (size_t i = 0; ok && i < files.size(); ++i) {
      ok = files[i].is_string() && files[i].get<std::string>().find('/') == std::string::npos;
      if (ok) st.state_files.push_back(files[i].get<std::string>());
    }
    if (!ok) return DataLoss(path.string() + ": state_files is not a list of file names");
  }
  return st;
}

Result<std::string> NewestCompleteCheckpoint(const std::string& root, int64_t max_step) {
  std::error_code ec;
  std::map<int64_t, std::string, std::greater<>> steps;  // newest first
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory(ec) || name.rfind("step_", 0) != 0 || name.size() <= 5 ||
        name.find_first_not_of("0123456789", 5) != std::string::npos) {
      continue;
    }
    const int64_t step = std::stoll(name.substr(5));
    if (max_step < 0 || step <= max_step) steps[step] = e.path().string();
  }
  for (const auto& [step, dir] : steps) {
    Result<CheckpointState> st = ReadCheckpointState(dir);
    std::vector<std::string> need = {"config.json", "model.safetensors"};
    if (st.ok()) need.insert(need.end(), st->state_files.begin(), st->state_files.end());
    std::string missing;
    for (const std::string& f : need) {
      const fs::path p = fs::path(dir) / f;
      if (!fs::is_regular_file(p, ec) || fs::file_size(p, ec) == 0) missing = f;
    }
    if (st.ok() && !missing.empty()) st = DataLoss(missing);
    if (st.ok() && st->step == step) return dir;
    spdlog::warn("checkpoint {} is incomplete ({}): using an older one", dir,
                 st.ok() ? "state.json names step " + std::to_string(st->step)
                         : st.status().message() + " missing or unreadable");
  }
  return NotFound("no complete checkpoint under " + root);
}

}  // namespace treepo::learner
