// `treepo top [--run DIR | --url URL] [--token T] [--interval-ms N] [--iterations N]`: the
// cluster table of a running scheduler's dashboard in the terminal, refreshed
// (docs/dashboard.md). --run reads the URL `treepo train` wrote to DIR/dashboard_url.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <memory>
#include <string>

#include "cluster/command.h"
#include "common/file_io.h"
#include "common/log.h"
#include "scheduler/dashboard/dashboard.h"
#include "scheduler/dashboard/top.h"

namespace treepo::cluster {
namespace {

std::atomic<bool> g_top_stop{false};
void OnTopSignal(int) { g_top_stop.store(true); }

struct TopCmdOptions {
  std::string run_dir;
  scheduler::dashboard::TopOptions top;
};

Status RunTopCmd(TopCmdOptions o) {
  if (!o.run_dir.empty()) {
    if (!o.top.url.empty()) return InvalidArgument("top: give --run or --url, not both");
    const std::string file =
        (std::filesystem::path(o.run_dir) / scheduler::dashboard::kDashboardUrlFile).string();
    Result<std::string> url = ReadFileToString(file, "dashboard URL file");
    if (!url.ok()) {
      return NotFound("top: no " + file +
                      " (is `treepo train` running there with dashboard.enabled?)");
    }
    o.top.url = *url;
    while (!o.top.url.empty() && (o.top.url.back() == '\n' || o.top.url.back() == '\r')) {
      o.top.url.pop_back();
    }
  }
  o.top.clear_screen = o.top.clear_screen && ::isatty(STDOUT_FILENO) == 1;
  return scheduler::dashboard::RunTop(o.top, &g_top_stop);
}

}  // namespace

void RegisterTop(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<TopCmdOptions>();
  CLI::App* cmd =
      app.add_subcommand("top", "the cluster table of a running scheduler, in the terminal");
  cmd->add_option("--run", opts->run_dir, "a running `train`'s out_dir (reads dashboard_url)");
  cmd->add_option("--url", opts->top.url, "the dashboard's URL (http://host:port/)");
  cmd->add_option("--token", opts->top.token, "dashboard.token, if the dashboard has one");
  cmd->add_option("--interval-ms", opts->top.interval_ms, "refresh period")->capture_default_str();
  cmd->add_option("--iterations", opts->top.iterations, "tables to print (0: until Ctrl-C)")
      ->capture_default_str();
  cmd->callback([opts, exit_code] {
    InitLogging("top");
    std::signal(SIGINT, OnTopSignal);
    std::signal(SIGTERM, OnTopSignal);
    const Status st = RunTopCmd(*opts);
    if (!st.ok()) {
      spdlog::error("{}", st.ToString());
      *exit_code = 1;
    }
  });
}

}  // namespace treepo::cluster
