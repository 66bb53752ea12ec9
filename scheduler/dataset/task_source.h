// The built-in arithmetic task as a prompt source, so the scheduler serves it through the same
// records and cursor as a prompt file.
#pragma once

#include <cstdint>
#include <vector>

#include "scheduler/dataset/prompt_dataset.h"
#include "scheduler/task/arithmetic_task.h"

namespace treepo::scheduler {

// `count` distinct problems of `split` (ArithmeticTask::MakeSet) as records with ids
// "train-<i>" or "heldout-<i>", the prompt text and the answer.
std::vector<PromptRecord> ArithmeticRecords(const ArithmeticTask& task, Split split, int count,
                                            uint64_t seed);

}  // namespace treepo::scheduler
