#include "scheduler/dataset/task_source.h"

#include <string>

namespace treepo::scheduler {

std::vector<PromptRecord> ArithmeticRecords(const ArithmeticTask& task, Split split, int count,
                                            uint64_t seed) {
  const std::string prefix = split == Split::kTrain ? "train-" : "heldout-";
  std::vector<PromptRecord> records;
  for (ArithmeticProblem& p : task.MakeSet(split, count, seed)) {
    PromptRecord r;
    r.id = prefix + std::to_string(records.size());
    r.prompt = std::move(p.prompt);
    r.answer = std::move(p.answer);
    records.push_back(std::move(r));
  }
  return records;
}

}  // namespace treepo::scheduler
