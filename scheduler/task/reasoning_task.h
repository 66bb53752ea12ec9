// The second built-in task: chains of 7 to 9 one-digit additions and subtractions, solved by
// rewriting the expression with its first two terms combined until one number is left, so a
// response runs 4 to 7 segments of 16 tokens and samples of one prompt share their early steps.
//
//   prompt:   "Q: 6+3-3+2+3-4=?\nA:"
//   solution: " 9-3+2+3-4 = 6+2+3-4 = 8+3-4 = 11-4 = 7 \boxed{7}"
//
// Every step is local (the running value, the next term, and a copy of the rest), which a small
// model learns quickly. The problems are the arithmetic task's (scheduler/task/arithmetic_task.h)
// with the knobs of ReasoningTaskOptions(), so evaluation and rewards are shared; what makes the
// task is its solution format and its pretraining corpus: a share of the chains carry one slip
// in the middle (a step whose running value is off by a little), after which the chain goes on
// correctly from the wrong value to a wrong boxed answer. A base model trained on it slips now
// and then mid-chain, which is what RL has to remove (docs/builtin-task.md).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "scheduler/task/arithmetic_task.h"

namespace treepo::scheduler {

// Task names recorded in a model dir's task.json ("task" key).
inline constexpr std::string_view kArithmeticTaskName = "arithmetic";
inline constexpr std::string_view kReasoningTaskName = "reasoning";

// The reasoning task's knobs: 7 to 9 one-digit terms, 40% of operators '-' (never below 0).
ArithmeticOptions ReasoningTaskOptions();

// A sum/difference problem read back from its prompt ("Q: 7+5-3=?\nA:").
struct ChainTerms {
  std::vector<int64_t> terms;
  std::vector<char> ops;  // '+' or '-', terms.size() - 1 of them
};
// Refuses (kInvalidArgument, quoting the prompt) anything that is not "Q: " + a chain of
// non-negative integers joined by '+'/'-' + "=?\nA:" (products included).
Result<ChainTerms> ParseChainPrompt(std::string_view prompt);

// The rewriting solution of `chain`, and its final value in *answer. With slip_step >= 0
// (0-based; step i combines the running value with terms[i + 1]) that step's running value is
// off by `delta` and every later step continues from it, so the boxed answer is off by `delta`
// too. Preconditions: slip_step < ops.size(); with a slip, delta != 0 and every later running
// value stays >= 0 (checked; RandomSlip picks such a slip).
std::string ReasoningSolution(const ChainTerms& chain, int slip_step, int64_t delta,
                              std::string* answer);

struct Slip {
  int step = 0;
  int64_t delta = 0;
};
// A slip for a chain of `chain.ops.size()` steps: a step after the first (the middle and end of
// the chain; a one-step chain slips in its only step), off by 1..`max_delta` either way,
// upwards when downwards would go below 0.
Slip RandomSlip(const ChainTerms& chain, int max_delta, std::mt19937_64& rng);

}  // namespace treepo::scheduler
