#include "scheduler/eval/metrics.h"

#include <random>
#include <unordered_map>

namespace treepo::scheduler {
namespace {

// Index into `ids` of the winning vote: most frequent id >= 0, ties to the id whose first
// occurrence is earliest. -1 when every id is negative (no answer).
int VoteIndex(const std::vector<int>& ids, std::vector<int>& counts) {
  std::fill(counts.begin(), counts.end(), 0);
  for (int id : ids) {
    if (id >= 0) ++counts[id];
  }
  int best = -1, best_count = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int id = ids[i];
    // Strictly greater: a later answer with an equal count never displaces an earlier one.
    if (id >= 0 && counts[id] > best_count) {
      best_count = counts[id];
      best = static_cast<int>(i);
    }
  }
  return best;
}

// Dense ids for the non-empty answers (-1 for empty) and the number of distinct answers.
std::vector<int> AnswerIds(const std::vector<SampleOutcome>& samples, int* distinct) {
  std::unordered_map<std::string, int> index;
  std::vector<int> ids;
  ids.reserve(samples.size());
  for (const SampleOutcome& s : samples) {
    if (s.answer.empty()) {
      ids.push_back(-1);
    } else {
      ids.push_back(index.emplace(s.answer, static_cast<int>(index.size())).first->second);
    }
  }
  *distinct = static_cast<int>(index.size());
  return ids;
}

}  // namespace

double Accuracy(const std::vector<bool>& correct) {
  if (correct.empty()) return 0.0;
  int64_t right = 0;
  for (bool c : correct) right += c ? 1 : 0;
  return static_cast<double>(right) / static_cast<double>(correct.size());
}

int MajorityVoteIndex(const std::vector<SampleOutcome>& samples) {
  int distinct = 0;
  const std::vector<int> ids = AnswerIds(samples, &distinct);
  std::vector<int> counts(distinct);
  return VoteIndex(ids, counts);
}

Result<double> MajAtK(const std::vector<SampleOutcome>& samples, int k, int draws, uint64_t seed) {
  if (samples.empty()) return InvalidArgument("Maj@k: no samples");
  if (k < 1 || draws < 1) {
    return InvalidArgument("Maj@k: k (" + std::to_string(k) + ") and draws (" +
                           std::to_string(draws) + ") must be >= 1");
  }
  int distinct = 0;
  const std::vector<int> ids = AnswerIds(samples, &distinct);
  std::vector<int> counts(distinct);
  std::vector<int> drawn_ids(k), drawn_samples(k);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, samples.size() - 1);
  int64_t wins = 0;
  for (int d = 0; d < draws; ++d) {
    for (int j = 0; j < k; ++j) {
      drawn_samples[j] = static_cast<int>(pick(rng));
      drawn_ids[j] = ids[drawn_samples[j]];
    }
    const int winner = VoteIndex(drawn_ids, counts);
    if (winner >= 0 && samples[drawn_samples[winner]].correct) ++wins;
  }
  return static_cast<double>(wins) / static_cast<double>(draws);
}

Result<double> PassAtK(int n, int c, int k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n) {
    return InvalidArgument("pass@k: need n >= 1, 0 <= c <= n, 1 <= k <= n (n " + std::to_string(n) +
                           ", c " + std::to_string(c) + ", k " + std::to_string(k) + ")");
  }
  if (n - c < k) return 1.0;
  // C(n-c, k) / C(n, k) = prod_{i=n-c+1..n} (i - k) / i.
  double fail = 1.0;
  for (int i = n - c + 1; i <= n; ++i) fail *= 1.0 - static_cast<double>(k) / i;
  return 1.0 - fail;
}

Result<double> Overall(const std::vector<SetScore>& sets) {
  if (sets.empty()) return InvalidArgument("overall: no sets");
  double total = 0.0, weighted = 0.0;
  for (const SetScore& s : sets) {
    if (s.size < 0) return InvalidArgument("overall: set '" + s.name + "' has negative size");
    total += static_cast<double>(s.size);
    weighted += s.score * static_cast<double>(s.size);
  }
  if (total <= 0.0) return InvalidArgument("overall: total size is 0");
  return weighted / total;
}

}  // namespace treepo::scheduler
