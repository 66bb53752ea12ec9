#include "worker/kv/page_pool.h"

#include "common/check.h"

namespace treepo::worker {

PagePool::PagePool(int num_pages) : ref_counts_(num_pages, 0) {
  TREEPO_CHECK_GE(num_pages, 0);
  free_.reserve(num_pages);
  for (int p = num_pages - 1; p >= 0; --p) free_.push_back(p);
}

PageStats PagePool::Stats() const {
  PageStats s;
  s.total = num_pages();
  s.free = num_free();
  s.used = s.total - s.free;
  s.shared = shared_;
  return s;
}

void PagePool::Allocate(int n, std::vector<int32_t>* out) {
  TREEPO_CHECK_LE(n, num_free());
  for (int i = 0; i < n; ++i) {
    const int32_t p = free_.back();
    free_.pop_back();
    TREEPO_CHECK_EQ(ref_counts_[p], 0);
    ref_counts_[p] = 1;
    out->push_back(p);
  }
}

void PagePool::AddRef(int32_t page) {
  TREEPO_CHECK(page >= 0 && page < num_pages()) << "page " << page;
  TREEPO_CHECK_GE(ref_counts_[page], 1);
  if (++ref_counts_[page] == 2) ++shared_;
}

void PagePool::Release(int32_t page) {
  TREEPO_CHECK(page >= 0 && page < num_pages()) << "page " << page;
  TREEPO_CHECK_GE(ref_counts_[page], 1);
  const int32_t n = --ref_counts_[page];
  if (n == 1) --shared_;
  if (n == 0) free_.push_back(page);
}

}  // namespace treepo::worker
