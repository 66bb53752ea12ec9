// CHECK macros: bugs fail loudly. A failed check logs file:line, the condition and any
// streamed values, then aborts. Never use these on input from outside the process.
#pragma once

#include <sstream>
#include <string>

namespace treepo::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  template <typename T>
  CheckFailure& operator<<(const T& v) {
    stream_ << v;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

// Lets `cond ? (void)0 : Voidify() & CheckFailure(...) << x` type-check.
struct Voidify {
  void operator&(const CheckFailure&) {}
};

}  // namespace treepo::internal

#define TREEPO_CHECK(cond)                 \
  (cond) ? (void)0                         \
         : ::treepo::internal::Voidify() & \
               ::treepo::internal::CheckFailure(__FILE__, __LINE__, #cond)

#define TREEPO_CHECK_OP(a, op, b) TREEPO_CHECK((a)op(b)) << "(" << (a) << " vs " << (b) << ") "
#define TREEPO_CHECK_EQ(a, b) TREEPO_CHECK_OP(a, ==, b)
#define TREEPO_CHECK_NE(a, b) TREEPO_CHECK_OP(a, !=, b)
#define TREEPO_CHECK_LT(a, b) TREEPO_CHECK_OP(a, <, b)
#define TREEPO_CHECK_LE(a, b) TREEPO_CHECK_OP(a, <=, b)
#define TREEPO_CHECK_GT(a, b) TREEPO_CHECK_OP(a, >, b)
#define TREEPO_CHECK_GE(a, b) TREEPO_CHECK_OP(a, >=, b)
#define TREEPO_CHECK_OK(expr)                                                   \
  do {                                                                          \
    auto treepo_check_status_ = (expr);                                         \
    TREEPO_CHECK(treepo_check_status_.ok()) << treepo_check_status_.ToString(); \
  } while (0)
