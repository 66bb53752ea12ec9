#include "worker/kv/kv_cache.h"

#include <string>
#include <unordered_map>

#include "common/check.h"

namespace treepo::worker {

Status KvCacheOptions::Validate() const {
  if (page_size < 1 || page_size > 4096) {
    return InvalidArgument("kv page_size must be in [1, 4096], got " + std::to_string(page_size));
  }
  if (num_pages < 1 || num_pages > (1 << 24)) {
    return InvalidArgument("kv num_pages must be in [1, 2^24], got " + std::to_string(num_pages));
  }
  return OkStatus();
}

KvCache::KvCache(const KvCacheOptions& options, compute::KvPages* pages)
    : page_size_(options.page_size),
      n_layers_(pages->shape().n_layers),
      kv_dim_(pages->shape().kv_dim),
      pool_(options.num_pages),
      pages_(pages) {
  TREEPO_CHECK_OK(options.Validate());
  TREEPO_CHECK_EQ(pages->shape().page_size, options.page_size);
  TREEPO_CHECK_EQ(pages->shape().num_pages, options.num_pages);
}

const KvCache::Node& KvCache::Get(NodeId node) const {
  auto it = nodes_.find(node);
  TREEPO_CHECK(it != nodes_.end()) << "node " << node << " not in the KV cache";
  return it->second;
}

KvCache::Node& KvCache::Get(NodeId node) {
  return const_cast<Node&>(static_cast<const KvCache*>(this)->Get(node));
}

int KvCache::Length(NodeId node) const { return Get(node).length; }

int KvCache::Capacity(NodeId node) const {
  return static_cast<int>(Get(node).pages.size()) * page_size_;
}

std::span<const int32_t> KvCache::BlockTable(NodeId node) const { return Get(node).pages; }

int KvCache::PagesToCreate(int capacity) const { return PagesFor(capacity); }

int KvCache::PagesToFork(int length, int child_capacity) const {
  return PagesFor(child_capacity) - length / page_size_;
}

void KvCache::Create(NodeId node, int capacity) {
  TREEPO_CHECK(!Contains(node)) << "node " << node << " exists";
  Node n;
  pool_.Allocate(PagesFor(capacity), &n.pages);
  nodes_.emplace(node, std::move(n));
}

void KvCache::Fork(NodeId parent, int length, std::span<const NodeId> children, int child_capacity,
                   bool copy_partial) {
  TREEPO_CHECK_LE(length, Capacity(parent));
  TREEPO_CHECK_GE(child_capacity, length);
  TREEPO_CHECK(
      HasFreePages(PagesToFork(length, child_capacity) * static_cast<int>(children.size())));
  const int full = length / page_size_;
  for (NodeId child : children) {
    TREEPO_CHECK(!Contains(child) && child != parent) << "child " << child << " exists";
    const Node& p = Get(parent);  // re-read: emplace may rehash
    Node c;
    c.length = length;
    c.pages.assign(p.pages.begin(), p.pages.begin() + full);
    for (int32_t page : c.pages) pool_.AddRef(page);
    pool_.Allocate(PagesFor(child_capacity) - full, &c.pages);
    nodes_.emplace(child, std::move(c));
    if (copy_partial) CopyPartialPage(parent, child);
  }
}

void KvCache::CopyPartialPage(NodeId parent, NodeId child) {
  const Node& c = Get(child);
  const int rows = c.length % page_size_;
  if (rows == 0) return;
  const int index = c.length / page_size_;
  const Node& p = Get(parent);
  TREEPO_CHECK_LT(index, static_cast<int>(p.pages.size()));
  const int32_t src = p.pages[index], dst = c.pages[index];
  TREEPO_CHECK_EQ(pool_.ref_count(dst), 1);
  pages_->CopyRows(src, dst, rows);
}

void KvCache::SetLength(NodeId node, int length) {
  TREEPO_CHECK(length >= 0 && length <= Capacity(node)) << "length " << length;
  Get(node).length = length;
}

void KvCache::Trim(NodeId node) {
  Node& n = Get(node);
  const size_t keep = PagesFor(n.length);
  while (n.pages.size() > keep) {
    pool_.Release(n.pages.back());
    n.pages.pop_back();
  }
}

void KvCache::Release(NodeId node) {
  auto it = nodes_.find(node);
  TREEPO_CHECK(it != nodes_.end()) << "node " << node << " not in the KV cache";
  for (int32_t page : it->second.pages) pool_.Release(page);
  nodes_.erase(it);
}

KvCache::ExportPlan KvCache::PlanExport(std::span<const NodeId> nodes) const {
  ExportPlan plan;
  std::unordered_map<int32_t, uint32_t> index;
  for (NodeId node : nodes) {
    const Node& n = Get(node);
    std::vector<uint32_t>& table = plan.tables.emplace_back();
    for (int i = 0; i < PagesFor(n.length); ++i) {
      auto [it, added] = index.try_emplace(n.pages[i], static_cast<uint32_t>(plan.pages.size()));
      if (added) plan.pages.push_back(n.pages[i]);
      table.push_back(it->second);
    }
  }
  return plan;
}

void KvCache::ReadPage(int32_t page, float* out) const {
  TREEPO_CHECK(page >= 0 && page < pool_.num_pages());
  pages_->Read(page, out);
}

void KvCache::Import(std::span<const NodeId> nodes, std::span<const int> lengths,
                     std::span<const std::vector<uint32_t>> tables, int n_pages,
                     const float* data) {
  TREEPO_CHECK(nodes.size() == lengths.size() && nodes.size() == tables.size());
  TREEPO_CHECK(HasFreePages(n_pages));
  std::vector<int32_t> pages;
  pool_.Allocate(n_pages, &pages);
  for (int i = 0; i < n_pages; ++i) pages_->Write(pages[i], data + i * PageFloats());
  for (size_t k = 0; k < nodes.size(); ++k) {
    TREEPO_CHECK(!Contains(nodes[k])) << "node " << nodes[k] << " exists";
    TREEPO_CHECK_EQ(static_cast<int>(tables[k].size()), PagesFor(lengths[k]));
    Node n;
    n.length = lengths[k];
    for (uint32_t i : tables[k]) {
      TREEPO_CHECK_LT(static_cast<int>(i), n_pages);
      n.pages.push_back(pages[i]);
      pool_.AddRef(pages[i]);
    }
    nodes_.emplace(nodes[k], std::move(n));
  }
  for (int32_t page : pages) pool_.Release(page);  // the allocation's own reference
}

}  // namespace treepo::worker
