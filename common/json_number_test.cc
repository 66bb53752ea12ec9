#include "common/json_number.h"

#include <gtest/gtest.h>

namespace treepo {
namespace {

using nlohmann::json;

TEST(JsonNumberTest, IntegersOutsideTheTypeAreErrorsNotWrappedValues) {
  // nlohmann's get<int>() gives -727379968 for this one.
  Result<int> i = JsonToInt<int>(json::parse("1000000000000"), "depth");
  ASSERT_FALSE(i.ok());
  EXPECT_NE(i.status().message().find("depth: 1000000000000 is outside"), std::string::npos)
      << i.status().message();
  EXPECT_FALSE(JsonToInt<int>(json::parse("1e12"), "depth").ok());
  // 2^64 + 5 parses as a double; get<uint64_t>() gives 0.
  EXPECT_FALSE(JsonToInt<uint64_t>(json::parse("18446744073709551621"), "id").ok());
  EXPECT_FALSE(JsonToInt<uint32_t>(json::parse("-1"), "worker").ok());
  EXPECT_FALSE(JsonToInt<int>(json::parse("2.5"), "n").ok());
  EXPECT_FALSE(JsonToInt<int>(json::parse("\"7\""), "n").ok());
  EXPECT_FALSE(JsonToInt<int64_t>(json::parse("9223372036854775808"), "n").ok());
}

TEST(JsonNumberTest, IntegersInRangeReadExactly) {
  EXPECT_EQ(*JsonToInt<int>(json::parse("-2147483648"), "n"), INT32_MIN);
  EXPECT_EQ(*JsonToInt<int>(json::parse("1e3"), "n"), 1000);
  EXPECT_EQ(*JsonToInt<uint64_t>(json::parse("18446744073709551615"), "n"), UINT64_MAX);
  EXPECT_EQ(*JsonToInt<int64_t>(json::parse("-9223372036854775808"), "n"), INT64_MIN);
  EXPECT_EQ(*JsonToInt<uint32_t>(json::parse("4294967295"), "n"), UINT32_MAX);
}

TEST(JsonNumberTest, FloatsMustBeFinite) {
  EXPECT_FALSE(JsonToFiniteFloat(json::parse("1e39"), "reward").ok());
  EXPECT_FALSE(JsonToFiniteFloat(json::parse("null"), "reward").ok());
  EXPECT_FLOAT_EQ(*JsonToFiniteFloat(json::parse("0.5"), "reward"), 0.5f);
}

}  // namespace
}  // namespace treepo
