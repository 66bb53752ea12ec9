// Reference-counted page ids: the bookkeeping half of the KV cache (no storage here).
//
// A page is free (count 0) or used by `count` block tables; a count above 1 means the page is
// shared and must never be written again. Not thread-safe: owned by the engine's thread.
#pragma once

#include <cstdint>
#include <vector>

namespace treepo::worker {

struct PageStats {
  int total = 0;   // pages in the pool
  int free = 0;    // count 0
  int used = 0;    // count >= 1
  int shared = 0;  // count >= 2
};

class PagePool {
 public:
  explicit PagePool(int num_pages);

  int num_pages() const { return static_cast<int>(ref_counts_.size()); }
  int num_free() const { return static_cast<int>(free_.size()); }
  int ref_count(int32_t page) const { return ref_counts_[page]; }
  PageStats Stats() const;

  // Takes `n` free pages (count becomes 1) and appends them to `out`.
  // Precondition (CHECKed): n <= num_free(). Callers plan first.
  void Allocate(int n, std::vector<int32_t>* out);
  // Precondition: the page is used.
  void AddRef(int32_t page);
  // Drops one reference; the page returns to the free list when its count reaches 0.
  void Release(int32_t page);

 private:
  std::vector<int32_t> ref_counts_;
  std::vector<int32_t> free_;  // a stack: the most recently freed page is reused first
  int shared_ = 0;             // pages with count >= 2, kept up to date for Stats()
};

}  // namespace treepo::worker
