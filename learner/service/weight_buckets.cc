#include "learner/service/weight_buckets.h"

#include <algorithm>
#include <cstring>

namespace treepo::learner {
namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

uint64_t Mix(uint64_t h, uint64_t v) { return (h ^ v) * kFnvPrime; }

}  // namespace

uint64_t WeightBucketPlan::Fingerprint() const {
  uint64_t h = kFnvOffset;
  h = Mix(h, total_elements);
  h = Mix(h, element_bytes);
  h = Mix(h, bucket_bytes);
  h = Mix(h, buckets.size());
  for (const WeightBucket& b : buckets) {
    h = Mix(h, b.offset);
    h = Mix(h, b.count);
  }
  return h;
}

Result<WeightBucketPlan> PlanWeightBuckets(const model::ParamLayout& layout, size_t bucket_bytes,
                                           size_t element_bytes) {
  if (element_bytes == 0) return InvalidArgument("weight buckets: element_bytes is 0");
  if (bucket_bytes < element_bytes) {
    return InvalidArgument("weight buckets: bucket_bytes " + std::to_string(bucket_bytes) +
                           " is smaller than one element (" + std::to_string(element_bytes) +
                           " bytes)");
  }
  WeightBucketPlan plan;
  plan.total_elements = layout.total();
  plan.element_bytes = element_bytes;
  plan.bucket_bytes = bucket_bytes;
  const size_t cap = bucket_bytes / element_bytes;

  WeightBucket cur;
  auto close = [&] {
    if (cur.count == 0) return;
    const size_t next = cur.offset + cur.count;
    plan.buckets.push_back(std::move(cur));
    cur = WeightBucket{};
    cur.offset = next;
  };
  size_t expect_offset = 0;
  const std::vector<model::TensorInfo>& tensors = layout.tensors();
  for (size_t t = 0; t < tensors.size(); ++t) {
    if (tensors[t].offset != expect_offset) {
      return InvalidArgument("weight buckets: tensor " + tensors[t].name + " starts at " +
                             std::to_string(tensors[t].offset) + ", expected " +
                             std::to_string(expect_offset) + " (the layout must tile the buffer)");
    }
    expect_offset += tensors[t].numel;
    size_t left = tensors[t].numel;
    size_t pos = 0;
    // A tensor that fits in a bucket of its own is not split across two.
    if (cur.count > 0 && left <= cap && cur.count + left > cap) close();
    while (left > 0) {
      if (cur.count == cap) close();
      const size_t take = std::min(cap - cur.count, left);
      cur.pieces.push_back(BucketPiece{t, pos, take});
      cur.count += take;
      pos += take;
      left -= take;
    }
  }
  if (expect_offset != layout.total()) {
    return InvalidArgument("weight buckets: the layout's tensors hold " +
                           std::to_string(expect_offset) + " elements, its total is " +
                           std::to_string(layout.total()));
  }
  close();
  return plan;
}

uint64_t BucketChecksum(std::span<const uint8_t> bytes) {
  uint64_t h = kFnvOffset;
  const size_t words = bytes.size() / 8;
  const uint8_t* p = bytes.data();
  for (size_t i = 0; i < words; ++i) {
    uint64_t w;
    std::memcpy(&w, p + 8 * i, 8);
    h = Mix(h, w);
  }
  for (size_t i = words * 8; i < bytes.size(); ++i) h = Mix(h, bytes[i]);
  return h;
}

std::string DescribeBucket(const model::ParamLayout& layout, const WeightBucket& bucket) {
  auto piece = [&](const BucketPiece& p) {
    const model::TensorInfo& t = layout.tensors()[p.tensor];
    std::string s = t.name;
    if (p.tensor_begin != 0 || p.count != t.numel) {
      s += "[" + std::to_string(p.tensor_begin) + ":" + std::to_string(p.tensor_begin + p.count) +
           "]";
    }
    return s;
  };
  if (bucket.pieces.empty()) return "(empty)";
  std::string s = piece(bucket.pieces.front());
  if (bucket.pieces.size() > 1) s += " .. " + piece(bucket.pieces.back());
  return s;
}

}  // namespace treepo::learner
