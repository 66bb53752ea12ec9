#include "scheduler/task/reasoning_task.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "common/check.h"

namespace treepo::scheduler {
namespace {

constexpr int kMaxSteps = 64;

bool Done(const RepeatProblem& p, int64_t v) { return p.op == '-' ? v < p.bound : v > p.bound; }

}  // namespace

ArithmeticOptions ReasoningTaskOptions() {
  ArithmeticOptions t;
  t.task = std::string(kReasoningTaskName);
  t.min_steps = 6;
  t.max_steps = 9;
  return t;
}

std::string RepeatPrompt(const RepeatProblem& p) {
  std::string s = "Q: " + std::to_string(p.start);
  s += p.op;
  s += std::to_string(p.operand);
  s += p.op == '-' ? " until below " : " until above ";
  s += std::to_string(p.bound);
  s += "=?\nA:";
  return s;
}

Result<RepeatProblem> ParseRepeatPrompt(std::string_view prompt) {
  auto bad = [&] {
    return InvalidArgument("reasoning task: not a repeat prompt: \"" + std::string(prompt) + "\"");
  };
  constexpr std::string_view kHead = "Q: ";
  if (prompt.substr(0, kHead.size()) != kHead) return bad();
  size_t i = kHead.size();
  auto number = [&](int64_t* out) {
    const size_t from = i;
    int64_t v = 0;
    while (i < prompt.size() && std::isdigit(static_cast<unsigned char>(prompt[i])) &&
           i - from < 15) {
      v = v * 10 + (prompt[i] - '0');
      ++i;
    }
    *out = v;
    return i > from;
  };
  RepeatProblem p;
  if (!number(&p.start) || i >= prompt.size()) return bad();
  p.op = prompt[i++];
  if ((p.op != '+' && p.op != '-') || !number(&p.operand) || p.operand < 1 || p.operand > 9) {
    return bad();
  }
  constexpr std::string_view kBelow = " until below ", kAbove = " until above ";
  const std::string_view until = p.op == '-' ? kBelow : kAbove;
  if (prompt.substr(i, until.size()) != until) return bad();
  i += until.size();
  if (!number(&p.bound)) return bad();
  if (RepeatPrompt(p) != prompt) return bad();
  return p;
}

std::string RepeatSolution(const RepeatProblem& p, int slip_step, int64_t delta,
                           std::string* answer) {
  std::string out;
  int64_t v = p.start;
  for (int step = 0; step < kMaxSteps; ++step) {
    int64_t next = p.op == '-' ? v - p.operand : v + p.operand;
    if (step == slip_step) next = next + delta < 0 ? next + std::abs(delta) : next + delta;
    out += ' ';
    out += std::to_string(v);
    out += p.op;
    out += std::to_string(p.operand);
    out += '=';
    out += std::to_string(next);
    // The comparison with the bound, written out: the stop decision is then local to the
    // step (the symbol just written), not a comparison with a number back in the prompt.
    out += next < p.bound ? '<' : next == p.bound ? '=' : '>';
    out += std::to_string(p.bound);
    out += '.';
    v = next;
    if (Done(p, v)) break;
  }
  out += " \\boxed{";
  out += std::to_string(v);
  out += '}';
  *answer = std::to_string(v);
  return out;
}

int RepeatSteps(const RepeatProblem& p) {
  int64_t v = p.start;
  int steps = 0;
  while (steps < kMaxSteps && (steps == 0 || !Done(p, v))) {
    v = p.op == '-' ? v - p.operand : v + p.operand;
    ++steps;
  }
  return steps;
}

Slip RandomSlip(const RepeatProblem& p, int max_delta, int from, std::mt19937_64& rng) {
  TREEPO_CHECK(max_delta >= 1 && from >= 1);
  const int steps = RepeatSteps(p);
  Slip s;
  s.step = steps <= 1
               ? 0
               : std::uniform_int_distribution<int>(std::min(from, steps - 1), steps - 1)(rng);
  const int64_t magnitude = std::uniform_int_distribution<int64_t>(1, max_delta)(rng);
  s.delta = std::uniform_int_distribution<int>(0, 1)(rng) == 1 ? -magnitude : magnitude;
  return s;
}

ArithmeticProblem GenerateReasoningProblem(const ArithmeticOptions& o, std::mt19937_64& rng) {
  RepeatProblem p;
  while (true) {
    const int n = std::uniform_int_distribution<int>(o.min_steps, o.max_steps)(rng);
    p.operand = std::uniform_int_distribution<int64_t>(3, 9)(rng);
    p.op = std::uniform_int_distribution<int>(0, 1)(rng) == 0 ? '-' : '+';
    p.bound = p.op == '-' ? std::uniform_int_distribution<int64_t>(5, 40)(rng)
                          : std::uniform_int_distribution<int64_t>(60, 99)(rng);
    const int64_t u = std::uniform_int_distribution<int64_t>(0, p.operand - 1)(rng);
    // Exactly n steps: the (n-1)-th value is on the near side of the bound, the n-th past it.
    p.start = p.op == '-' ? p.bound + (n - 1) * p.operand + u : p.bound - (n - 1) * p.operand - u;
    if (p.start >= 1) break;  // a '+' chain too long for its bound: draw again
  }
  ArithmeticProblem out;
  out.prompt = RepeatPrompt(p);
  out.solution = RepeatSolution(p, -1, 0, &out.answer);
  return out;
}

}  // namespace treepo::scheduler
