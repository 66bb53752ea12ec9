// A non-owning view of paged KV storage, handed to the forward pass.
//
// Storage per layer is K and V, each [num_pages, page_size, kv_dim] fp32, row-major. A
// sequence's position p lives in page block_table[p / page_size], row p % page_size. The
// forward knows nothing about how pages are allocated, shared or freed: that is the owner's
// business (worker/kv). The owner guarantees that every page the forward writes into is not
// shared with another sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace treepo::cpu {

struct KvView {
  float* const* k = nullptr;  // [n_layers] pointers, each to [num_pages, page_size, kv_dim]
  float* const* v = nullptr;  // same shape as k
  int n_layers = 0;
  int num_pages = 0;
  int page_size = 0;
  int kv_dim = 0;

  size_t page_stride() const { return static_cast<size_t>(page_size) * kv_dim; }
  // Row of position `pos` of a sequence with `block_table`, in layer `layer`'s K or V.
  float* KRow(int layer, std::span<const int32_t> block_table, int pos) const {
    return k[layer] + Offset(block_table, pos);
  }
  float* VRow(int layer, std::span<const int32_t> block_table, int pos) const {
    return v[layer] + Offset(block_table, pos);
  }

 private:
  size_t Offset(std::span<const int32_t> block_table, int pos) const {
    return static_cast<size_t>(block_table[pos / page_size]) * page_stride() +
           static_cast<size_t>(pos % page_size) * kv_dim;
  }
};

}  // namespace treepo::cpu
