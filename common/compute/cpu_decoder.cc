#include "common/compute/cpu_decoder.h"

#include <cstring>

#include "common/check.h"
#include "common/cpu/forward.h"

namespace treepo::compute {

HostKvPages::HostKvPages(const KvShape& shape) : shape_(shape) {
  TREEPO_CHECK(shape.n_layers > 0 && shape.num_pages > 0 && shape.page_size > 0 &&
               shape.kv_dim > 0);
  const size_t floats = static_cast<size_t>(shape.num_pages) * shape.page_size * shape.kv_dim;
  k_.resize(shape.n_layers);
  v_.resize(shape.n_layers);
  for (int l = 0; l < shape.n_layers; ++l) {
    k_[l].assign(floats, 0.0f);
    v_[l].assign(floats, 0.0f);
    k_ptrs_.push_back(k_[l].data());
    v_ptrs_.push_back(v_[l].data());
  }
}

size_t HostKvPages::PageOffset(int32_t page) const {
  TREEPO_CHECK(page >= 0 && page < shape_.num_pages) << "page " << page;
  return static_cast<size_t>(page) * shape_.page_size * shape_.kv_dim;
}

void HostKvPages::CopyRows(int32_t from, int32_t to, int rows) {
  TREEPO_CHECK(rows >= 0 && rows <= shape_.page_size);
  const size_t src = PageOffset(from), dst = PageOffset(to);
  const size_t n = static_cast<size_t>(rows) * shape_.kv_dim * sizeof(float);
  for (int l = 0; l < shape_.n_layers; ++l) {
    std::memcpy(k_[l].data() + dst, k_[l].data() + src, n);
    std::memcpy(v_[l].data() + dst, v_[l].data() + src, n);
  }
}

void HostKvPages::Read(int32_t page, float* out) const {
  const size_t at = PageOffset(page);
  const size_t rows = static_cast<size_t>(shape_.page_size) * shape_.kv_dim;
  for (int l = 0; l < shape_.n_layers; ++l) {
    std::memcpy(out + l * rows, k_[l].data() + at, rows * sizeof(float));
    std::memcpy(out + (shape_.n_layers + l) * rows, v_[l].data() + at, rows * sizeof(float));
  }
}

void HostKvPages::Write(int32_t page, const float* in) {
  const size_t at = PageOffset(page);
  const size_t rows = static_cast<size_t>(shape_.page_size) * shape_.kv_dim;
  for (int l = 0; l < shape_.n_layers; ++l) {
    std::memcpy(k_[l].data() + at, in + l * rows, rows * sizeof(float));
    std::memcpy(v_[l].data() + at, in + (shape_.n_layers + l) * rows, rows * sizeof(float));
  }
}

cpu::KvView HostKvPages::View() const {
  cpu::KvView view;
  view.k = k_ptrs_.data();
  view.v = v_ptrs_.data();
  view.n_layers = shape_.n_layers;
  view.num_pages = shape_.num_pages;
  view.page_size = shape_.page_size;
  view.kv_dim = shape_.kv_dim;
  return view;
}

const float* HostKvPages::KPage(int layer, int32_t page) const {
  return k_[layer].data() + PageOffset(page);
}

const float* HostKvPages::VPage(int layer, int32_t page) const {
  return v_[layer].data() + PageOffset(page);
}

namespace {

class CpuDecoder final : public DecoderBackend {
 public:
  CpuDecoder(std::shared_ptr<const model::ModelWeights> weights, const KvShape& kv)
      : weights_(std::move(weights)), kv_(kv) {}

  std::string_view name() const override { return "cpu"; }
  KvPages& kv() override { return kv_; }
  const KvPages& kv() const override { return kv_; }

  Status SetWeights(std::shared_ptr<const model::ModelWeights> weights) override {
    if (weights == nullptr) return InvalidArgument("cpu backend: no weights");
    const model::ModelConfig& a = weights_->config;
    const model::ModelConfig& b = weights->config;
    if (a.n_layers != b.n_layers || a.kv_dim() != b.kv_dim() || a.dim != b.dim ||
        a.vocab_size != b.vocab_size) {
      return InvalidArgument("cpu backend: new weights have another shape");
    }
    weights_ = std::move(weights);
    return OkStatus();
  }

  void Forward(const ForwardBatch& batch, float* logits) override {
    cpu::Forward(*weights_, kv_.View(), batch, &workspace_, logits, &stats_);
  }

  ForwardStats stats() const override { return stats_; }

 private:
  std::shared_ptr<const model::ModelWeights> weights_;
  HostKvPages kv_;
  cpu::ForwardWorkspace workspace_;
  ForwardStats stats_;
};

}  // namespace

std::unique_ptr<DecoderBackend> CreateCpuDecoder(std::shared_ptr<const model::ModelWeights> weights,
                                                 const KvShape& kv) {
  TREEPO_CHECK(weights != nullptr);
  TREEPO_CHECK_EQ(kv.n_layers, weights->config.n_layers);
  TREEPO_CHECK_EQ(kv.kv_dim, weights->config.kv_dim());
  return std::make_unique<CpuDecoder>(std::move(weights), kv);
}

}  // namespace treepo::compute
