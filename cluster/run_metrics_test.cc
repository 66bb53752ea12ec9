#include "cluster/run_metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/line_appender.h"

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;

class RunMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("treepo_run_metrics_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "metrics.jsonl").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }
  std::string Read() {
    std::ifstream in(path_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  fs::path dir_;
  std::string path_;
};

TEST_F(RunMetricsTest, KeepsStepsBeforeTheResumeDropsTheRestAndATornLine) {
  Write(
      "{\"step\":0,\"eval\":{\"accuracy\":0.1}}\n{\"step\":0,\"loss\":1}\n{\"step\":1,\"loss\":2}\n"
      "{\"step\":1,\"loss\":9}\n{\"step\":2,\"loss\":3}\n{\"step\":2,\"eval\":{}}\n{\"step\":3,"
      "\"lo");
  auto r = ReconcileMetricsForResume(path_, 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kept_lines, 3);
  EXPECT_EQ(r->dropped_lines, 4);  // a repeated step 1, step 2 twice, the torn step 3
  EXPECT_EQ(Read(),
            "{\"step\":0,\"eval\":{\"accuracy\":0.1}}\n{\"step\":0,\"loss\":1}\n"
            "{\"step\":1,\"loss\":2}\n");
}

TEST_F(RunMetricsTest, AGapBeforeTheResumeIsRefusedAndTheFileKept) {
  const std::string text = "{\"step\":0}\n{\"step\":1}\n{\"step\":3}\n";
  Write(text);
  auto r = ReconcileMetricsForResume(path_, 4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("no line for step 2"), std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(Read(), text);
}

TEST_F(RunMetricsTest, AMissingFileIsANewRecord) {
  auto r = ReconcileMetricsForResume(path_, 5);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kept_lines, 0);
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(RunMetricsTest, LineAppenderWritesWholeLines) {
  {
    auto a = LineAppender::Open(path_);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(a->Append("{\"step\":0}").ok());
    ASSERT_TRUE(a->Append(std::string(100000, 'x')).ok());
  }
  ASSERT_TRUE(AppendLineToFile(path_, "{\"step\":1}").ok());
  EXPECT_EQ(Read(), "{\"step\":0}\n" + std::string(100000, 'x') + "\n{\"step\":1}\n");
  EXPECT_FALSE(LineAppender::Open((dir_ / "no" / "such").string()).ok());
}

}  // namespace
}  // namespace treepo::cluster
