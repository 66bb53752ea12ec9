// The second built-in task ("reasoning"): repeat one operation on a running value until it
// crosses a bound, writing every step with its comparison to the bound, so a response runs 4
// to 8 segments of 16 tokens and the samples of one prompt share their early steps.
//
//   prompt:   "Q: 95-9 until below 12=?\nA:"
//   solution: " 95-9=86>12. 86-9=77>12. 77-9=68>12. 68-9=59>12. 59-9=50>12. 50-9=41>12.
//              41-9=32>12. 32-9=23>12. 23-9=14>12. 14-9=5<12. \boxed{5}"   (one line; 6 to 9
//              steps by default; the symbol is <, = or >, whichever is true)
//   prompt:   "Q: 9+8 until above 90=?\nA:"  ->  " 9+8=17<90. ... 89+8=97>90. \boxed{97}"
//
// Every step is local (the previous result, the same operand, a sum or difference with one
// one-digit term, and a comparison with the bound), which a small model learns in seconds. What
// makes the task is its pretraining corpus: a share of the chains carry one slip in the middle (a
// step whose result is off by a little), after which the chain goes on correctly from the wrong
// value, possibly for a different number of steps, to a wrong boxed answer. A base model trained
// on it slips now and then mid-chain, which is what RL has to remove (docs/builtin-task.md).
//
// The task shares ArithmeticOptions, the split by prompt hash and ArithmeticTask's sampling
// with the arithmetic task: ArithmeticOptions::task = "reasoning" selects it.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "common/status.h"
#include "scheduler/task/arithmetic_task.h"

namespace treepo::scheduler {

// The reasoning task's knobs: ArithmeticOptions{} with task = "reasoning" (6 to 9 steps).
ArithmeticOptions ReasoningTaskOptions();

// "Q: <start><op><operand> until below <bound>=?\nA:" (op '-') or "... until above <bound>..."
// (op '+').
struct RepeatProblem {
  int64_t start = 0;
  int64_t operand = 0;  // 1..9
  char op = '-';
  int64_t bound = 10;
};
std::string RepeatPrompt(const RepeatProblem& p);
// Refuses (kInvalidArgument, quoting the prompt) anything RepeatPrompt does not write.
Result<RepeatProblem> ParseRepeatPrompt(std::string_view prompt);

// The worked solution and its final value in *answer. With slip_step >= 0 (0-based) the result
// of that step is off by `delta` (raised to +|delta| if it would go below 0) and the chain goes
// on from it until the bound. Steps are capped at 64.
std::string RepeatSolution(const RepeatProblem& p, int slip_step, int64_t delta,
                           std::string* answer);
// Steps of the correct chain.
int RepeatSteps(const RepeatProblem& p);

struct Slip {
  int step = -1;  // -1: none
  int64_t delta = 0;
};
// A slip in step `from` (0-based, >= 1) or a later one, off by 1..max_delta either way; in the
// last step when the chain has no step `from`.
Slip RandomSlip(const RepeatProblem& p, int max_delta, int from, std::mt19937_64& rng);

// One problem of `options`: min_steps..max_steps steps, operand 3..9, '-' down to a bound in
// 5..40 or '+' up to one in 60..99, alike.
ArithmeticProblem GenerateReasoningProblem(const ArithmeticOptions& options, std::mt19937_64& rng);

}  // namespace treepo::scheduler
