// The host half of a CUDA forward: a ForwardBatch checked and flattened into the int32 arrays
// the kernels read, laid out in one buffer so that it goes to the device in one copy. Plain
// C++ (no CUDA): tested on any machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/compute/decoder_backend.h"

namespace treepo::cuda {

struct BatchPlan {
  int rows = 0;
  int n_out = 0;        // logit rows
  int max_context = 0;  // longest context of a row
  // Offsets into `ints` of the arrays (each [rows] unless said otherwise).
  size_t tokens = 0;
  size_t positions = 0;
  size_t slots = 0;         // page * page_size + position % page_size: where K, V are written
  size_t bt_offset = 0;     // where the row's block table starts in block_tables
  size_t ctx_len = 0;       // position + 1: the positions the row attends to
  size_t logit_rows = 0;    // [n_out]
  size_t block_tables = 0;  // the sequences' tables, the pages they use, concatenated
  std::vector<int32_t> ints;
};

// Checks the batch like the CPU forward does (CHECK: these are the caller's bugs): rows add up,
// tokens in [0, vocab), num_rows >= 1, start_pos >= 0, block tables cover every position touched
// and name pages in [0, num_pages), logit rows in range. `plan` is reused (no allocation once
// warm).
void PlanBatch(const compute::ForwardBatch& batch, int vocab, int page_size, int num_pages,
               BatchPlan* plan);

}  // namespace treepo::cuda
