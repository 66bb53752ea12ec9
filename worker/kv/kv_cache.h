// The paged KV cache: per-page reference counts and one block table per node, over a pool of
// page storage (compute::KvPages: host memory for the CPU backend, device memory for CUDA)
// that the cache addresses but does not own.
//
// A node's block table lists the pages holding its positions [0, length); it may hold more
// pages than that (capacity reserved for tokens still to be decoded). Forking shares the
// parent's full pages (reference counts go up) and gives each child its own copy of the
// parent's partial last page, so no position a node will write lies in a shared page.
//
// Every mutating call follows plan/commit: the Pages*() planners are const and say how many
// free pages a commit takes; the caller checks HasFreePages() and only then commits, and
// commits CHECK their preconditions instead of failing. Not thread-safe: owned by the engine's
// thread. See docs/kv-cache.md.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/compute/decoder_backend.h"
#include "common/ids.h"
#include "common/status.h"
#include "worker/kv/page_pool.h"

namespace treepo::worker {

struct KvCacheOptions {
  int page_size = 16;    // tokens per page
  int num_pages = 1024;  // pages in the pool (each holds page_size positions of every layer)

  Status Validate() const;
};

class KvCache {
 public:
  // Bookkeeping over `pages` (not owned; it outlives the cache). Preconditions: options
  // validated, and `pages` has their page_size and num_pages.
  KvCache(const KvCacheOptions& options, compute::KvPages* pages);

  int page_size() const { return page_size_; }
  int n_layers() const { return n_layers_; }
  int kv_dim() const { return kv_dim_; }
  PageStats Stats() const { return pool_.Stats(); }
  const PagePool& pool() const { return pool_; }
  int num_nodes() const { return static_cast<int>(nodes_.size()); }

  bool Contains(NodeId node) const { return nodes_.contains(node); }
  // Preconditions for the node accessors: Contains(node).
  int Length(NodeId node) const;
  int Capacity(NodeId node) const;  // positions its pages can hold
  std::span<const int32_t> BlockTable(NodeId node) const;

  // Planners: free pages the matching commit takes.
  int PagesToCreate(int capacity) const;
  // Per child, forking at `length` positions into a child of `child_capacity` positions.
  int PagesToFork(int length, int child_capacity) const;
  bool HasFreePages(int n) const { return n <= pool_.num_free(); }

  // Commits. Each CHECKs its preconditions (planned pages available, nodes present/absent).
  // A new node of length 0 with pages for `capacity` positions.
  void Create(NodeId node, int capacity);
  // New `children` (absent) of length `length` (<= parent's capacity) and capacity
  // `child_capacity` (>= length), sharing the parent's pages that hold [0, length) fully.
  // `copy_partial`: copy the parent's partial page now; otherwise the caller calls
  // CopyPartialPage once the parent's positions [0, length) are written.
  void Fork(NodeId parent, int length, std::span<const NodeId> children, int child_capacity,
            bool copy_partial);
  // Copies the rows [page start, child length) of the child's last partial page from the
  // parent's page at the same index.
  void CopyPartialPage(NodeId parent, NodeId child);
  // Sets the positions written so far (<= capacity).
  void SetLength(NodeId node, int length);
  // Returns pages beyond those holding [0, length) to the pool.
  void Trim(NodeId node);
  // Drops the node; its pages' counts go down and pages at zero return to the pool.
  void Release(NodeId node);

  // Migration between workers (docs/placement.md). PlanExport lists the distinct pages that
  // hold [0, Length) of each node (all Contains), in first-use order, and each node's block
  // table as indices into that list: nodes that share pages here share them in the list, so
  // an import keeps the sharing.
  struct ExportPlan {
    std::vector<int32_t> pages;
    std::vector<std::vector<uint32_t>> tables;  // per node, in the order given
  };
  ExportPlan PlanExport(std::span<const NodeId> nodes) const;
  // Floats of one page over every layer: K rows of layers 0..n-1, then V rows of each.
  size_t PageFloats() const { return size_t{2} * n_layers_ * page_size_ * kv_dim_; }
  // Copies `page` into out[0, PageFloats()).
  void ReadPage(int32_t page, float* out) const;
  // Takes `n_pages` free pages (planned: HasFreePages(n_pages)), fills them from
  // data[n_pages * PageFloats()], and makes each node (absent) of `lengths[i]` positions over
  // the pages `tables[i]` names (indices < n_pages, PagesFor(length) of them). Pages no table
  // names return to the pool.
  void Import(std::span<const NodeId> nodes, std::span<const int> lengths,
              std::span<const std::vector<uint32_t>> tables, int n_pages, const float* data);

 private:
  struct Node {
    std::vector<int32_t> pages;
    int length = 0;
  };
  const Node& Get(NodeId node) const;
  Node& Get(NodeId node);
  int PagesFor(int positions) const { return (positions + page_size_ - 1) / page_size_; }

  int page_size_, n_layers_, kv_dim_;
  PagePool pool_;
  compute::KvPages* pages_;
  std::unordered_map<NodeId, Node> nodes_;
};

}  // namespace treepo::worker
