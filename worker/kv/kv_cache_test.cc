#include "worker/kv/kv_cache.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/compute/cpu_decoder.h"

namespace treepo::worker {
namespace {

// Host page storage (2 layers, kv_dim 3) and a cache over it.
struct HostCache {
  explicit HostCache(int pages, int page_size = 4)
      : storage(compute::KvShape{2, pages, page_size, 3}),
        kv(KvCacheOptions{page_size, pages}, &storage) {}
  compute::HostKvPages storage;
  KvCache kv;
};

// Writes a recognisable value into every row [0, length) of `node` in both layers.
void Fill(const HostCache& cache, NodeId node, float base) {
  const KvCache& kv = cache.kv;
  cpu::KvView view = cache.storage.View();
  for (int l = 0; l < 2; ++l) {
    for (int p = 0; p < kv.Length(node); ++p) {
      for (int d = 0; d < 3; ++d) {
        view.KRow(l, kv.BlockTable(node), p)[d] = base + 100 * l + p + 0.1f * d;
        view.VRow(l, kv.BlockTable(node), p)[d] = -(base + 100 * l + p + 0.1f * d);
      }
    }
  }
}

TEST(KvCacheTest, ForkSharesFullPagesAndCopiesPartial) {
  HostCache cache(16);
  KvCache& kv = cache.kv;
  const NodeId parent(1);
  kv.Create(parent, 10);  // 3 pages: 4 + 4 + 2
  kv.SetLength(parent, 10);
  Fill(cache, parent, 1000);
  EXPECT_EQ(kv.PagesToFork(10, 13), 2);  // own partial page + one more
  std::vector<NodeId> children = {NodeId(2), NodeId(3)};
  kv.Fork(parent, 10, children, 13, /*copy_partial=*/true);
  PageStats st = kv.Stats();
  EXPECT_EQ(st.used, 3 + 2 * 2);
  EXPECT_EQ(st.shared, 2);
  for (NodeId c : children) {
    auto bt = kv.BlockTable(c);
    ASSERT_EQ(bt.size(), 4u);
    EXPECT_EQ(bt[0], kv.BlockTable(parent)[0]);
    EXPECT_EQ(bt[1], kv.BlockTable(parent)[1]);
    EXPECT_NE(bt[2], kv.BlockTable(parent)[2]);
    EXPECT_EQ(kv.pool().ref_count(bt[2]), 1);
    for (int l = 0; l < 2; ++l) {
      for (int p = 8; p < 10; ++p) {
        EXPECT_EQ(cache.storage.View().KRow(l, bt, p)[1], 1000 + 100 * l + p + 0.1f);
        EXPECT_EQ(cache.storage.View().VRow(l, bt, p)[2], -(1000 + 100 * l + p + 0.2f));
      }
    }
  }
  kv.Release(parent);
  EXPECT_EQ(kv.Stats().shared, 2);  // the two full pages are still shared by the children
  kv.Release(children[0]);
  kv.Release(children[1]);
  EXPECT_EQ(kv.Stats().used, 0);
  EXPECT_EQ(kv.Stats().free, 16);
}

TEST(KvCacheTest, ForkAtPageBoundaryCopiesNothing) {
  HostCache cache(8);
  KvCache& kv = cache.kv;
  kv.Create(NodeId(1), 8);
  kv.SetLength(NodeId(1), 8);
  EXPECT_EQ(kv.PagesToFork(8, 9), 1);
  std::vector<NodeId> c = {NodeId(2)};
  kv.Fork(NodeId(1), 8, c, 9, true);
  EXPECT_EQ(kv.Stats().used, 3);
  EXPECT_EQ(kv.Stats().shared, 2);
  kv.Release(NodeId(1));
  kv.Release(NodeId(2));
  EXPECT_EQ(kv.Stats().used, 0);
}

TEST(KvCacheTest, TrimReturnsUnusedPages) {
  HostCache cache(8);
  KvCache& kv = cache.kv;
  kv.Create(NodeId(1), 20);
  EXPECT_EQ(kv.Stats().used, 5);
  kv.SetLength(NodeId(1), 5);
  kv.Trim(NodeId(1));
  EXPECT_EQ(kv.Stats().used, 2);
  EXPECT_EQ(kv.Capacity(NodeId(1)), 8);
  kv.Release(NodeId(1));
  EXPECT_EQ(kv.Stats().free, 8);
}

TEST(KvCacheTest, PlannersMatchCommits) {
  HostCache cache(6);
  KvCache& kv = cache.kv;
  EXPECT_EQ(kv.PagesToCreate(0), 0);
  EXPECT_EQ(kv.PagesToCreate(9), 3);
  EXPECT_FALSE(kv.HasFreePages(7));
  EXPECT_TRUE(kv.HasFreePages(6));
  kv.Create(NodeId(1), 9);
  EXPECT_EQ(kv.pool().num_free(), 3);
  EXPECT_FALSE(kv.HasFreePages(kv.PagesToFork(9, 24)));
}

TEST(KvCacheTest, OptionsValidate) {
  KvCacheOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.page_size = 0;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
  o.page_size = 16;
  o.num_pages = 0;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace treepo::worker
