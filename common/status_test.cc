#include "common/status.h"

#include <gtest/gtest.h>

#include "common/check.h"
#include "common/ids.h"

namespace treepo {
namespace {

Result<int> Half(int x) {
  if (x % 2) return InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  TREEPO_ASSIGN_OR_RETURN(int h, Half(x));
  return Half(h);
}

TEST(StatusTest, ResultCarriesValueOrError) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().ToString(), "INVALID_ARGUMENT: odd");
  EXPECT_EQ(r.status().WithContext("x").message(), "x: odd");
}

TEST(StatusTest, ResultFromOkStatusIsAnError) {
  Result<int> r{OkStatus()};
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

TEST(StatusTest, StrongIdsCompareAndHash) {
  NodeId a(3), b(4);
  EXPECT_LT(a, b);
  EXPECT_EQ(std::hash<NodeId>()(a), std::hash<uint64_t>()(3));
}

TEST(CheckDeathTest, FailedCheckAborts) {
  EXPECT_DEATH({ TREEPO_CHECK_EQ(1 + 1, 3) << "arith"; }, "CHECK failed");
}

}  // namespace
}  // namespace treepo
