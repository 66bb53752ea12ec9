#include "scheduler/task/reasoning_task.h"

#include <cctype>

#include "common/check.h"

namespace treepo::scheduler {
namespace {

// Running values: values[i] is the value after step i (i.e. after terms[i + 1]).
std::vector<int64_t> RunningValues(const ChainTerms& chain) {
  std::vector<int64_t> values;
  int64_t v = chain.terms[0];
  for (size_t i = 0; i < chain.ops.size(); ++i) {
    v = chain.ops[i] == '+' ? v + chain.terms[i + 1] : v - chain.terms[i + 1];
    values.push_back(v);
  }
  return values;
}

}  // namespace

ArithmeticOptions ReasoningTaskOptions() {
  ArithmeticOptions t;
  t.min_terms = 7;
  t.max_terms = 9;
  t.min_digits = 1;
  t.max_digits = 1;
  t.subtract_prob = 0.4;
  return t;
}

Result<ChainTerms> ParseChainPrompt(std::string_view prompt) {
  auto bad = [&] {
    return InvalidArgument("reasoning task: not a chain of '+'/'-' terms: \"" +
                           std::string(prompt) + "\"");
  };
  constexpr std::string_view kHead = "Q: ", kTail = "=?\nA:";
  if (prompt.size() < kHead.size() + kTail.size() || prompt.substr(0, kHead.size()) != kHead ||
      prompt.substr(prompt.size() - kTail.size()) != kTail) {
    return bad();
  }
  const std::string_view body =
      prompt.substr(kHead.size(), prompt.size() - kHead.size() - kTail.size());
  ChainTerms c;
  size_t i = 0;
  while (true) {
    const size_t start = i;
    int64_t v = 0;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) {
      if (i - start >= 15) return bad();
      v = v * 10 + (body[i] - '0');
      ++i;
    }
    if (i == start) return bad();
    c.terms.push_back(v);
    if (i == body.size()) break;
    if (body[i] != '+' && body[i] != '-') return bad();
    c.ops.push_back(body[i]);
    ++i;
  }
  if (c.ops.empty()) return bad();
  return c;
}

std::string ReasoningSolution(const ChainTerms& chain, int slip_step, int64_t delta,
                              std::string* answer) {
  TREEPO_CHECK(slip_step < static_cast<int>(chain.ops.size()) && (slip_step < 0 || delta != 0));
  std::string out;
  int64_t v = chain.terms[0];
  for (size_t i = 0; i < chain.ops.size(); ++i) {
    v = chain.ops[i] == '+' ? v + chain.terms[i + 1] : v - chain.terms[i + 1];
    if (static_cast<int>(i) == slip_step) v += delta;
    TREEPO_CHECK(v >= 0);
    out += i == 0 ? " " : " = ";
    out += std::to_string(v);
    for (size_t j = i + 1; j < chain.ops.size(); ++j) {
      out += chain.ops[j];
      out += std::to_string(chain.terms[j + 1]);
    }
  }
  out += " \\boxed{";
  out += std::to_string(v);
  out += '}';
  *answer = std::to_string(v);
  return out;
}

Slip RandomSlip(const ChainTerms& chain, int max_delta, std::mt19937_64& rng) {
  TREEPO_CHECK(!chain.ops.empty() && max_delta >= 1);
  const int steps = static_cast<int>(chain.ops.size());
  Slip s;
  s.step = steps == 1 ? 0 : std::uniform_int_distribution<int>(1, steps - 1)(rng);
  const int64_t magnitude = std::uniform_int_distribution<int64_t>(1, max_delta)(rng);
  const bool down = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
  // A downward slip must keep every later running value >= 0.
  const std::vector<int64_t> values = RunningValues(chain);
  int64_t lowest = values[s.step];
  for (int i = s.step; i < steps; ++i) lowest = std::min(lowest, values[i]);
  s.delta = down && lowest - magnitude >= 0 ? -magnitude : magnitude;
  return s;
}

}  // namespace treepo::scheduler
