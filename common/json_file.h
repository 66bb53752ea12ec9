// Reading a whole JSON file that must hold one object (config.json, task.json, eval reports).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace treepo {

// kNotFound when the file cannot be opened, kDataLoss when it is not one JSON object.
Result<nlohmann::json> ReadJsonObjectFile(const std::string& path);

}  // namespace treepo
