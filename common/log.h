// Logging: spdlog, to stderr (stdout is for a command's output). Use spdlog::info etc.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace treepo {

// Sets up the default logger on stderr with `level` ("trace".."off"); `name` tags lines.
void InitLogging(std::string_view name, std::string_view level = "info");

}  // namespace treepo
