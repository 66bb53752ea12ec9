#include "common/json_file.h"

#include <fstream>
#include <iterator>

namespace treepo {

Result<nlohmann::json> ReadJsonObjectFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot open " + path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return DataLoss(path + ": not a JSON object");
  return j;
}

}  // namespace treepo
