#include "learner/service/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

#include "common/model/safetensors.h"

namespace treepo::learner {

namespace fs = std::filesystem;

std::string CheckpointDir(const std::string& root, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step_%06lld", static_cast<long long>(step));
  return (fs::path(root) / name).string();
}

Status SaveCheckpoint(const std::string& dir, const model::ModelWeights& weights,
                      const AdamW& optimizer, const CheckpointState& state) {
  const fs::path final_dir(dir);
  const fs::path tmp = final_dir.string() + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return InvalidArgument("cannot create " + tmp.string() + ": " + ec.message());
  TREEPO_RETURN_IF_ERROR(model::SaveHfModel(weights, tmp.string()));
  TREEPO_RETURN_IF_ERROR(optimizer.Save((tmp / kOptimizerFile).string()));
  {
    std::ofstream out(tmp / kStateFile, std::ios::trunc);
    out << nlohmann::json{{"step", state.step}, {"version", state.version}}.dump() << "\n";
    out.close();
    if (!out) return DataLoss("writing " + (tmp / kStateFile).string() + " failed");
  }
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) return DataLoss("cannot rename " + tmp.string() + " to " + dir + ": " + ec.message());
  return OkStatus();
}

Result<CheckpointState> ReadCheckpointState(const std::string& dir) {
  const fs::path path = fs::path(dir) / kStateFile;
  std::ifstream in(path);
  if (!in) return NotFound("no checkpoint state at " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("step") || !j.contains("version") ||
      !j["step"].is_number_integer() || !j["version"].is_number_integer() ||
      j["step"].get<int64_t>() < 0) {
    return DataLoss(path.string() + " is not {\"step\": N, \"version\": V}");
  }
  return CheckpointState{j["step"].get<int64_t>(), j["version"].get<uint64_t>()};
}

}  // namespace treepo::learner
