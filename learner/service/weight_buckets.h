// Bucketed weight sync, the host-side plan: the model's flat weight buffer cut into buckets of
// at most `bucket_bytes`, in layout order, the unit a GPU broadcast moves (one collective per
// bucket; a receiver can install the tensors a bucket completes while the next is in flight).
//
// Rules (deterministic: every rank computes the same plan from the same layout):
// - buckets cover the buffer [0, total) in order, each a contiguous element range;
// - a tensor that fits in a bucket is never split: when it does not fit in what is left of
//   the current bucket, a new bucket starts;
// - a tensor larger than a bucket fills what is left of the current bucket and goes on in as
//   many buckets as it needs (the only split);
// - every bucket holds at least one element and at most bucket_bytes / element_bytes.
//
// Plain C++: built and tested on every machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/model/weights.h"
#include "common/status.h"

namespace treepo::learner {

// Elements [tensor_begin, tensor_begin + count) of layout tensor `tensor`.
struct BucketPiece {
  size_t tensor = 0;  // index into ParamLayout::tensors()
  size_t tensor_begin = 0;
  size_t count = 0;
  bool operator==(const BucketPiece&) const = default;
};

// Elements [offset, offset + count) of the flat buffer.
struct WeightBucket {
  size_t offset = 0;
  size_t count = 0;
  std::vector<BucketPiece> pieces;  // in layout order; their counts sum to `count`
  bool operator==(const WeightBucket&) const = default;
};

struct WeightBucketPlan {
  size_t total_elements = 0;
  size_t element_bytes = 0;  // 4 (fp32) or 2 (bf16) on the wire
  size_t bucket_bytes = 0;
  std::vector<WeightBucket> buckets;

  // A hash of the plan's shape (sizes and every bucket's range): equal on two ranks iff they
  // cut the buffer the same way.
  uint64_t Fingerprint() const;
};

// kInvalidArgument when bucket_bytes < element_bytes, element_bytes is 0, or the layout's
// tensors do not tile [0, total) in order.
Result<WeightBucketPlan> PlanWeightBuckets(const model::ParamLayout& layout, size_t bucket_bytes,
                                           size_t element_bytes);

// A bucket's checksum: FNV-1a (64-bit) over the little-endian 8-byte words of `bytes`, then
// over the trailing bytes one at a time. Word-wise, so it keeps up with a broadcast (several
// GB/s on one core) where byte-wise FNV would not.
uint64_t BucketChecksum(std::span<const uint8_t> bytes);

// "model.layers.0.mlp.up_proj.weight[0:4096] .. model.layers.1.input_layernorm.weight": the
// tensors a bucket holds, for error messages.
std::string DescribeBucket(const model::ParamLayout& layout, const WeightBucket& bucket);

}  // namespace treepo::learner
