// The dashboard in a real browser: headless Chromium (Debian's chromium, driven by
// puppeteer-core from npm, tests/e2e_dashboard/package-lock.json) opens the dashboard of a
// running `treepo train`, waits for the live tree view to show nodes, checks the numbers on the
// page against /api/cluster, and saves screenshots of each view under
// <build>/tests/e2e_dashboard/screenshots. Skipped, saying why, without chromium, node or the
// npm packages (scripts/setup.sh, scripts/setup_dashboard_assets.sh).
#include <gtest/gtest.h>

#include "tests/e2e_dashboard/running_train.h"

namespace {

namespace fs = std::filesystem;
using treepo::testing::ReadAll;

TEST(DashboardBrowserE2eTest, TheDashboardOfARunningTrainShowsItsClusterTreesAndCurves) {
  const std::string chromium = treepo::testing::EnvOr("TREEPO_CHROMIUM", "/usr/bin/chromium");
  if (!fs::exists(chromium)) {
    GTEST_SKIP() << "no Chromium at " << chromium
                 << " (Debian package chromium, scripts/setup.sh; or set TREEPO_CHROMIUM)";
  }
  if (std::system("command -v node >/dev/null 2>&1") != 0) GTEST_SKIP() << "node not installed";
  const std::string modules = treepo::testing::EnvOr(
      "TREEPO_BROWSER_TEST_MODULES",
      (treepo::testing::SourceDir() + "/build/dashboard_browser_test/node_modules").c_str());
  if (!fs::exists(fs::path(modules) / "puppeteer-core")) {
    GTEST_SKIP() << "puppeteer-core not in " << modules
                 << " (scripts/setup_dashboard_assets.sh installs it from the lock file)";
  }
  const fs::path root =
      fs::temp_directory_path() / ("treepo_dash_browser_" + std::to_string(::getpid()));
  fs::remove_all(root);
  treepo::testing::RunningTrain train;
  // Steps enough to outlast the checks (the run is terminated when the test ends).
  const std::string error = train.Start(root, 100000);
  if (error.rfind("no treepo binary", 0) == 0) GTEST_SKIP() << error;
  ASSERT_EQ(error, "");
  const fs::path shots = fs::path(treepo::testing::BinaryDir()) / "tests/e2e_dashboard/screenshots";
  fs::create_directories(shots);
  const std::string out = (root / "browser.out").string();
  const std::string cmd = "node " + treepo::testing::SourceDir() +
                          "/tests/e2e_dashboard/browser_check.mjs " + train.url() + " " +
                          shots.string() + " " + modules + " " + chromium + " > " + out + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << ReadAll(out) << "\n--- train log ---\n" << train.log();
  for (const char* view : {"cluster.png", "trees.png", "training.png"}) {
    EXPECT_TRUE(fs::exists(shots / view)) << view;
  }
  if (!HasFailure()) fs::remove_all(root);
}

}  // namespace
