#include "common/cuda/batch_plan.h"

#include <algorithm>

#include "common/check.h"

namespace treepo::cuda {

void PlanBatch(const compute::ForwardBatch& batch, int vocab, int page_size, int num_pages,
               BatchPlan* plan) {
  TREEPO_CHECK_GT(page_size, 0);
  const int rows = static_cast<int>(batch.tokens.size());
  const int n_out = static_cast<int>(batch.logit_rows.size());
  int total = 0, max_context = 0;
  size_t table_entries = 0;
  for (const compute::SeqSlice& s : batch.seqs) {
    TREEPO_CHECK_GE(s.num_rows, 1);
    TREEPO_CHECK_GE(s.start_pos, 0);
    const int end = s.start_pos + s.num_rows;
    TREEPO_CHECK_LE(end, static_cast<int>(s.block_table.size()) * page_size)
        << "block table of " << s.block_table.size() << " pages";
    total += s.num_rows;
    max_context = std::max(max_context, end);
    table_entries += static_cast<size_t>((end + page_size - 1) / page_size);
  }
  TREEPO_CHECK_EQ(total, rows);

  plan->rows = rows;
  plan->n_out = n_out;
  plan->max_context = max_context;
  const size_t r = static_cast<size_t>(rows);
  plan->tokens = 0;
  plan->positions = r;
  plan->slots = 2 * r;
  plan->bt_offset = 3 * r;
  plan->ctx_len = 4 * r;
  plan->logit_rows = 5 * r;
  plan->block_tables = 5 * r + n_out;
  plan->ints.resize(plan->block_tables + table_entries);
  int32_t* ints = plan->ints.data();

  for (int i = 0; i < rows; ++i) {
    const int32_t tok = batch.tokens[i];
    TREEPO_CHECK(tok >= 0 && tok < vocab) << "token " << tok;
    ints[plan->tokens + i] = tok;
  }
  for (int i = 0; i < n_out; ++i) {
    const int32_t lr = batch.logit_rows[i];
    TREEPO_CHECK(lr >= 0 && lr < rows) << "logit row " << lr;
    ints[plan->logit_rows + i] = lr;
  }
  size_t table_at = plan->block_tables;
  int row = 0;
  for (const compute::SeqSlice& s : batch.seqs) {
    const int end = s.start_pos + s.num_rows;
    const int pages = (end + page_size - 1) / page_size;
    for (int p = 0; p < pages; ++p) {
      const int32_t page = s.block_table[p];
      TREEPO_CHECK(page >= 0 && page < num_pages) << "page " << page << " of " << num_pages;
      ints[table_at + p] = page;
    }
    for (int i = 0; i < s.num_rows; ++i, ++row) {
      const int pos = s.start_pos + i;
      ints[plan->positions + row] = pos;
      ints[plan->slots + row] = s.block_table[pos / page_size] * page_size + pos % page_size;
      ints[plan->bt_offset + row] = static_cast<int32_t>(table_at - plan->block_tables);
      ints[plan->ctx_len + row] = pos + 1;
    }
    table_at += pages;
  }
}

}  // namespace treepo::cuda
