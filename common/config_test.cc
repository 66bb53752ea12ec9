#include "common/config.h"

#include <gtest/gtest.h>

namespace treepo {
namespace {

TEST(ConfigTest, TomlAndOverridesFlattenToDottedKeys) {
  auto c = Config::FromTomlString("[sampler]\nwidth = 16\nmode = \"tree\"\ntemp = 0.7\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->Set("sampler.width=64").ok());
  int width = 0;
  std::string mode;
  double temp = 0;
  bool missing = true;
  ASSERT_TRUE(c->Get("sampler.width", &width).ok());
  ASSERT_TRUE(c->Get("sampler.mode", &mode).ok());
  ASSERT_TRUE(c->Get("sampler.temp", &temp).ok());
  ASSERT_TRUE(c->Get("sampler.absent", &missing).ok());
  EXPECT_EQ(width, 64);
  EXPECT_EQ(mode, "tree");
  EXPECT_DOUBLE_EQ(temp, 0.7);
  EXPECT_TRUE(missing);
  EXPECT_TRUE(c->CheckAllConsumed().ok());
}

TEST(ConfigTest, MisspeltKeyIsReportedWithSuggestion) {
  auto c = Config::FromTomlString("[sampler]\nwidht = 16\n");
  ASSERT_TRUE(c.ok());
  int width = 0;
  ASSERT_TRUE(c->Get("sampler.width", &width).ok());
  Status s = c->CheckAllConsumed();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("did you mean 'sampler.width'"), std::string::npos) << s.message();
}

TEST(ConfigTest, BadValuesAndSyntaxAreErrors) {
  auto c = Config::FromTomlString("a = \"x7\"\n");
  ASSERT_TRUE(c.ok());
  int a = 0;
  EXPECT_EQ(c->Get("a", &a).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Config::FromTomlString("a = = 3").ok());
  Config empty;
  EXPECT_FALSE(empty.Set("novalue").ok());
  EXPECT_FALSE(Config::LoadTomlFile("/nonexistent/x.toml").ok());
}

}  // namespace
}  // namespace treepo
