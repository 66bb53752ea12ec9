// Reading a whole JSON file that must hold one object (config.json, task.json, eval reports).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace treepo {

// kNotFound when the file does not exist, kInvalidArgument when the path is a directory
// (common/file_io.h), kDataLoss when the text is not valid UTF-8 or not one JSON object.
Result<nlohmann::json> ReadJsonObjectFile(const std::string& path);

// Parses `text` (one JSON value); a parse failure says whether the text is not valid UTF-8
// (with the byte offset) or not valid JSON (with nlohmann's reason). kDataLoss.
Result<nlohmann::json> ParseJsonText(std::string_view text);

}  // namespace treepo
