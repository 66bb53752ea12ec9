// Normalisation and comparison of math answers (the "math" reward).
#include <cmath>
#include <cstdlib>
#include <string>

#include "scheduler/reward/reward_fn.h"
#include "scheduler/tree/stop_rules.h"

namespace treepo::scheduler {
namespace {

void ReplaceAll(std::string* s, std::string_view from, std::string_view to) {
  for (size_t pos = s->find(from); pos != std::string::npos; pos = s->find(from, pos + to.size())) {
    s->replace(pos, from.size(), to);
  }
}

// Index of the '}' closing the '{' at `open`, or npos.
size_t Closing(const std::string& s, size_t open) {
  int level = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') ++level;
    if (s[i] == '}' && --level == 0) return i;
  }
  return std::string::npos;
}

// Replaces "\cmd{x}" with "x" for each wrapper command.
void Unwrap(std::string* s, std::string_view cmd) {
  const std::string head = std::string(cmd) + "{";
  for (size_t pos = s->find(head); pos != std::string::npos; pos = s->find(head, pos)) {
    const size_t open = pos + head.size() - 1;
    const size_t close = Closing(*s, open);
    if (close == std::string::npos) return;
    *s = s->substr(0, pos) + s->substr(open + 1, close - open - 1) + s->substr(close + 1);
  }
}

bool ParseDecimal(std::string_view s, double* out) {
  if (s.empty()) return false;
  size_t i = 0;
  if (s[0] == '-' || s[0] == '+') i = 1;
  bool digits = false, dot = false;
  for (; i < s.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(s[i]))) {
      digits = true;
    } else if (s[i] == '.' && !dot) {
      dot = true;
    } else {
      return false;
    }
  }
  if (!digits) return false;
  *out = std::strtod(std::string(s).c_str(), nullptr);
  return std::isfinite(*out);
}

}  // namespace

std::string NormalizeMathAnswer(std::string_view answer) {
  std::string s(answer);
  for (std::string_view w : {"\\text", "\\textbf", "\\mathrm", "\\mbox", "\\mathbf", "\\boxed"}) {
    Unwrap(&s, w);
  }
  std::string out;
  for (char c : s) {
    if (c != ' ' && c != '\n' && c != '\t' && c != '$') out += c;
  }
  for (std::string_view x : {"\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\displaystyle"}) {
    ReplaceAll(&out, x, "");
  }
  for (std::string_view deg : {"^{\\circ}", "^\\circ", "\\circ", "\\%", "\\$"}) {
    ReplaceAll(&out, deg, "");
  }
  ReplaceAll(&out, "\\dfrac", "\\frac");
  ReplaceAll(&out, "\\tfrac", "\\frac");
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

std::optional<double> ParseMathNumber(std::string_view in) {
  std::string s(in);
  // Thousands separators: "1,000" / "1{,}000" (only between digit groups of three).
  ReplaceAll(&s, "{,}", ",");
  if (s.find(',') != std::string::npos) {
    std::string t;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == ',') {
        auto digit = [&](size_t k) {
          return k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]));
        };
        const bool grouped =
            i > 0 && digit(i - 1) && digit(i + 1) && digit(i + 2) && digit(i + 3) && !digit(i + 4);
        if (!grouped) return std::nullopt;
        continue;
      }
      t += s[i];
    }
    s = t;
  }
  double sign = 1;
  if (!s.empty() && s[0] == '-' && s.rfind("-\\frac", 0) == 0) {
    sign = -1;
    s = s.substr(1);
  }
  if (s.rfind("\\frac", 0) == 0) {
    // \frac{a}{b} or \frac ab (single characters).
    std::string num, den;
    size_t p = 5;
    auto arg = [&](std::string* dst) {
      if (p >= s.size()) return false;
      if (s[p] == '{') {
        const size_t c = Closing(s, p);
        if (c == std::string::npos) return false;
        *dst = s.substr(p + 1, c - p - 1);
        p = c + 1;
      } else {
        *dst = s.substr(p, 1);
        p += 1;
      }
      return true;
    };
    if (!arg(&num) || !arg(&den) || p != s.size()) return std::nullopt;
    double a, b;
    if (!ParseDecimal(num, &a) || !ParseDecimal(den, &b) || b == 0) return std::nullopt;
    return sign * a / b;
  }
  const size_t slash = s.find('/');
  if (slash != std::string::npos) {
    double a, b;
    if (!ParseDecimal(s.substr(0, slash), &a) || !ParseDecimal(s.substr(slash + 1), &b) || b == 0) {
      return std::nullopt;
    }
    return sign * a / b;
  }
  double v;
  if (!ParseDecimal(s, &v)) return std::nullopt;
  return sign * v;
}

bool MathAnswersEqual(std::string_view a, std::string_view b) {
  const std::string na = NormalizeMathAnswer(a);
  const std::string nb = NormalizeMathAnswer(b);
  if (na.empty() || nb.empty()) return false;
  if (na == nb) return true;
  const std::optional<double> x = ParseMathNumber(na);
  const std::optional<double> y = ParseMathNumber(nb);
  if (!x || !y) return false;
  return std::fabs(*x - *y) <= 1e-9 * std::max(1.0, std::max(std::fabs(*x), std::fabs(*y)));
}

}  // namespace treepo::scheduler
