// A synthetic reasoning task with verifiable answers: multi-term integer arithmetic whose worked
// solution is a few short steps ending in `\boxed{ANSWER}`. It lets every part of the system
// (pretraining, sampling, rewards, RL) run without downloads.
//
//   prompt:   "Q: 47+385+19=?\nA:"
//   solution: " 47+385=432. 432+19=451. \boxed{451}"
//   product:  "Q: 36*7=?\nA:" -> " 30*7=210. 6*7=42. 210+42=252. \boxed{252}"
//
// Problems are split into train and held-out by a hash of the prompt text, so the two splits
// never share a problem whatever the seed. Difficulty knobs: digits per term, number of terms,
// share of subtraction and of products.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace treepo::scheduler {

// Built-in task names (ArithmeticOptions::task, the "task" key of a model dir's task.json).
inline constexpr std::string_view kArithmeticTaskName = "arithmetic";
inline constexpr std::string_view kReasoningTaskName = "reasoning";  // reasoning_task.h

struct ArithmeticOptions {
  // Which built-in task: "arithmetic" (this file's sums and products) or "reasoning" (repeat
  // an operation until a bound, scheduler/task/reasoning_task.h; only the knobs below marked
  // "reasoning" and held_out_percent apply to it).
  std::string task = std::string(kArithmeticTaskName);
  // Terms per sum (>= 2): each step of the solution adds or subtracts one more term.
  int min_terms = 2;
  int max_terms = 3;
  // Decimal digits per term (1..9); the first digit is never 0.
  int min_digits = 2;
  int max_digits = 3;
  // Chance that an operator after the first term is '-' (only taken when the running value
  // stays >= 0, so answers are never negative).
  double subtract_prob = 0.3;
  // Chance that a problem is a product "a*b" with a of min..max digits and b one digit 2..9,
  // solved by splitting a into its place values.
  double multiply_prob = 0.0;
  // Reasoning: steps of the chain (1 <= min_steps <= max_steps <= 30).
  int min_steps = 7;
  int max_steps = 10;
  // Percent (0..100) of the problem space that belongs to the held-out split.
  int held_out_percent = 10;

  Status Validate() const;
};

enum class Split { kTrain, kHeldOut };

struct ArithmeticProblem {
  std::string prompt;    // "Q: ...=?\nA:"
  std::string solution;  // " step. step. \boxed{N}" (no EOS: the tokenizer appends it)
  std::string answer;    // "N"
};

// The split a prompt belongs to: FNV-1a 64 of the prompt text, mod 100, below
// `held_out_percent` means held out. Pure function of the text; a larger percent's held-out
// split contains a smaller one's.
Split SplitOf(std::string_view prompt, int held_out_percent);

class ArithmeticTask {
 public:
  static Result<ArithmeticTask> Create(const ArithmeticOptions& options);

  // One problem from either split.
  ArithmeticProblem Generate(std::mt19937_64& rng) const;
  // One problem from `split` (rejection sampling on SplitOf). Precondition: that split is
  // non-empty (held_out_percent > 0 for kHeldOut, < 100 for kTrain).
  ArithmeticProblem Sample(Split split, std::mt19937_64& rng) const;
  // `count` distinct problems of `split`, deterministic in `seed`. Gives fewer only when the
  // problem space is smaller than `count` (it stops after 50 * count + 1000 tries).
  std::vector<ArithmeticProblem> MakeSet(Split split, int count, uint64_t seed) const;

  const ArithmeticOptions& options() const { return options_; }

  // The worked solution of a sum/difference of `terms` with `ops` ('+' or '-') between them,
  // or of the product terms[0] * terms[1] when ops == {'*'}. Exposed for tests.
  static ArithmeticProblem Solve(const std::vector<int64_t>& terms, const std::vector<char>& ops);

 private:
  explicit ArithmeticTask(const ArithmeticOptions& options) : options_(options) {}

  ArithmeticOptions options_;
};

}  // namespace treepo::scheduler
