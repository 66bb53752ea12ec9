#include "common/json_file.h"

#include "common/file_io.h"
#include "common/utf8.h"

namespace treepo {

Result<nlohmann::json> ParseJsonText(std::string_view text) {
  if (const size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return DataLoss("not valid UTF-8 (byte " + std::to_string(bad) + ")");
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(std::string("not valid JSON: ") + e.what());
  }
}

Result<nlohmann::json> ReadJsonObjectFile(const std::string& path) {
  TREEPO_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path, "JSON file"));
  Result<nlohmann::json> j = ParseJsonText(text);
  if (!j.ok()) return j.status().WithContext(path);
  if (!j->is_object()) return DataLoss(path + ": not a JSON object");
  return j;
}

}  // namespace treepo
