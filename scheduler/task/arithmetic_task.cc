#include "scheduler/task/arithmetic_task.h"

#include <string>
#include <unordered_set>

#include "common/check.h"
#include "scheduler/task/reasoning_task.h"

namespace treepo::scheduler {
namespace {

int64_t RandomTerm(int digits, std::mt19937_64& rng) {
  int64_t lo = 1;
  for (int i = 1; i < digits; ++i) lo *= 10;
  const int64_t hi = lo * 10 - 1;
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// Appends " a<op>b=r." (one solution step).
void AppendStep(std::string& out, int64_t a, char op, int64_t b, int64_t r) {
  out += ' ';
  out += std::to_string(a);
  out += op;
  out += std::to_string(b);
  out += '=';
  out += std::to_string(r);
  out += '.';
}

// Appends " \\boxed{v}".
void AppendBoxed(std::string& out, int64_t v) {
  out += " \\boxed{";
  out += std::to_string(v);
  out += '}';
}

}  // namespace

Status ArithmeticOptions::Validate() const {
  if (task != kArithmeticTaskName && task != kReasoningTaskName) {
    return InvalidArgument("task: unknown task \"" + task + "\" (arithmetic or reasoning)");
  }
  if (min_steps < 1 || max_steps < min_steps || max_steps > 30) {
    return InvalidArgument("reasoning task: steps must satisfy 1 <= min_steps <= max_steps <= 30");
  }
  if (min_terms < 2 || max_terms < min_terms || max_terms > 16) {
    return InvalidArgument("arithmetic task: terms must satisfy 2 <= min_terms <= max_terms <= 16");
  }
  if (min_digits < 1 || max_digits < min_digits || max_digits > 9) {
    return InvalidArgument(
        "arithmetic task: digits must satisfy 1 <= min_digits <= max_digits <= 9");
  }
  if (!(subtract_prob >= 0.0 && subtract_prob <= 1.0) ||
      !(multiply_prob >= 0.0 && multiply_prob <= 1.0)) {
    return InvalidArgument("arithmetic task: subtract_prob and multiply_prob must be in [0, 1]");
  }
  if (held_out_percent < 0 || held_out_percent > 100) {
    return InvalidArgument("arithmetic task: held_out_percent must be in [0, 100]");
  }
  return OkStatus();
}

Split SplitOf(std::string_view prompt, int held_out_percent) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : prompt) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int>(h % 100) < held_out_percent ? Split::kHeldOut : Split::kTrain;
}

Result<ArithmeticTask> ArithmeticTask::Create(const ArithmeticOptions& options) {
  TREEPO_RETURN_IF_ERROR(options.Validate());
  return ArithmeticTask(options);
}

ArithmeticProblem ArithmeticTask::Solve(const std::vector<int64_t>& terms,
                                        const std::vector<char>& ops) {
  TREEPO_CHECK(!terms.empty() && ops.size() + 1 == terms.size());
  ArithmeticProblem p;
  p.prompt = "Q: ";
  p.prompt += std::to_string(terms[0]);
  for (size_t i = 0; i < ops.size(); ++i) {
    p.prompt += ops[i];
    p.prompt += std::to_string(terms[i + 1]);
  }
  p.prompt += "=?\nA:";
  if (ops.size() == 1 && ops[0] == '*') {
    // Split the multiplicand into its non-zero place values, multiply each, then add up.
    const int64_t a = terms[0], b = terms[1];
    std::vector<int64_t> parts;
    for (int64_t place = 1, rest = a; rest > 0; place *= 10, rest /= 10) {
      if (rest % 10 != 0) parts.insert(parts.begin(), (rest % 10) * place);
    }
    if (parts.empty()) parts.push_back(0);
    for (int64_t part : parts) {
      AppendStep(p.solution, part, '*', b, part * b);
    }
    int64_t total = parts[0] * b;
    for (size_t i = 1; i < parts.size(); ++i) {
      const int64_t next = total + parts[i] * b;
      AppendStep(p.solution, total, '+', parts[i] * b, next);
      total = next;
    }
    p.answer = std::to_string(total);
    AppendBoxed(p.solution, total);
    return p;
  }
  int64_t value = terms[0];
  for (size_t i = 0; i < ops.size(); ++i) {
    TREEPO_CHECK(ops[i] == '+' || ops[i] == '-');
    const int64_t next = ops[i] == '+' ? value + terms[i + 1] : value - terms[i + 1];
    AppendStep(p.solution, value, ops[i], terms[i + 1], next);
    value = next;
  }
  p.answer = std::to_string(value);
  AppendBoxed(p.solution, value);
  return p;
}

ArithmeticProblem ArithmeticTask::Generate(std::mt19937_64& rng) const {
  if (options_.task == kReasoningTaskName) return GenerateReasoningProblem(options_, rng);
  auto digits = [&] {
    return std::uniform_int_distribution<int>(options_.min_digits, options_.max_digits)(rng);
  };
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  if (unit(rng) < options_.multiply_prob) {
    const int64_t a = RandomTerm(digits(), rng);
    const int64_t b = std::uniform_int_distribution<int64_t>(2, 9)(rng);
    return Solve({a, b}, {'*'});
  }
  const int n = std::uniform_int_distribution<int>(options_.min_terms, options_.max_terms)(rng);
  std::vector<int64_t> terms = {RandomTerm(digits(), rng)};
  std::vector<char> ops;
  int64_t value = terms[0];
  for (int i = 1; i < n; ++i) {
    const int64_t t = RandomTerm(digits(), rng);
    const bool subtract = unit(rng) < options_.subtract_prob && t <= value;
    ops.push_back(subtract ? '-' : '+');
    terms.push_back(t);
    value += subtract ? -t : t;
  }
  return Solve(terms, ops);
}

ArithmeticProblem ArithmeticTask::Sample(Split split, std::mt19937_64& rng) const {
  TREEPO_CHECK(split == Split::kHeldOut ? options_.held_out_percent > 0
                                        : options_.held_out_percent < 100);
  while (true) {
    ArithmeticProblem p = Generate(rng);
    if (SplitOf(p.prompt, options_.held_out_percent) == split) return p;
  }
}

std::vector<ArithmeticProblem> ArithmeticTask::MakeSet(Split split, int count,
                                                       uint64_t seed) const {
  std::vector<ArithmeticProblem> out;
  if (count <= 0) return out;
  std::mt19937_64 rng(seed);
  std::unordered_set<std::string> seen;
  const int64_t max_tries = 50 * static_cast<int64_t>(count) + 1000;
  for (int64_t tries = 0; tries < max_tries && static_cast<int>(out.size()) < count; ++tries) {
    ArithmeticProblem p = Generate(rng);
    if (SplitOf(p.prompt, options_.held_out_percent) != split) continue;
    if (!seen.insert(p.prompt).second) continue;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace treepo::scheduler
