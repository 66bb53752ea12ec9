#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace treepo {

void InitLogging(std::string_view name, std::string_view level) {
  auto logger = spdlog::stderr_color_mt(std::string(name));
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->set_pattern("[%H:%M:%S.%e] [%n] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
}

}  // namespace treepo
