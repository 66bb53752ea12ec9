// Evaluation metrics over sampled answers (TREEPO_SPEC section 7): accuracy, Maj@k by
// bootstrap, the unbiased pass@k estimator, and the size-weighted "overall" of several sets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace treepo::scheduler {

// One sample of a problem: its extracted answer ("" when none was found) and whether it was
// judged correct.
struct SampleOutcome {
  std::string answer;
  bool correct = false;
};

// Fraction of `correct` that is true; 0 for an empty vector.
double Accuracy(const std::vector<bool>& correct);

// The winning sample of a majority vote: the index of a sample holding the most common
// non-empty answer. Ties go to the answer whose first vote comes earliest in `samples`
// (order of appearance), so the result is deterministic. -1 when every answer is empty.
int MajorityVoteIndex(const std::vector<SampleOutcome>& samples);

// Maj@k of one problem: `draws` bootstrap draws of `k` samples with replacement (seeded
// mt19937_64), each scored 1 if its majority answer (MajorityVoteIndex over the draw, ties by
// first appearance in the draw) is correct, else 0 (also 0 when no drawn sample has an answer);
// returns the mean. Refuses empty `samples`, k < 1 or draws < 1.
Result<double> MajAtK(const std::vector<SampleOutcome>& samples, int k, int draws = 1000,
                      uint64_t seed = 0);

// Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k), computed as
// 1 - prod_{i=n-c+1..n} (1 - k / i) (no large binomials). 1 when n - c < k. Refuses
// n < 1, c outside 0..n, or k outside 1..n.
Result<double> PassAtK(int n, int c, int k);

// One test set's score and size.
struct SetScore {
  std::string name;
  double score = 0.0;
  int64_t size = 0;
};

// Mean of the scores weighted by set sizes; refuses an empty list, a negative size or a zero
// total size.
Result<double> Overall(const std::vector<SetScore>& sets);

}  // namespace treepo::scheduler
