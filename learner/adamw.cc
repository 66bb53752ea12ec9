#include "learner/adamw.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace treepo::learner {

AdamW::AdamW(const model::ParamLayout& layout, const AdamWOptions& options) : o_(options) {
  TREEPO_CHECK_OK(options.Validate());
  decay_ = compute::AdamWDecayMask(layout, o_);
  m_.assign(layout.total(), 0.0f);
  v_.assign(layout.total(), 0.0f);
}

double AdamW::LearningRate(int64_t step) const { return compute::AdamWLearningRate(o_, step); }

StepStats AdamW::Step(float* params, float* grad) {
  const size_t n = m_.size();
  StepStats s;
  double ss = 0.0;
  for (size_t i = 0; i < n; ++i) ss += static_cast<double>(grad[i]) * grad[i];
  s.grad_norm = std::sqrt(ss);
  if (o_.max_grad_norm > 0.0f && s.grad_norm > o_.max_grad_norm) {
    s.clip_scale = o_.max_grad_norm / (s.grad_norm + 1e-6);
  }
  ++step_;
  s.lr = LearningRate(step_);
  const float b1 = o_.beta1, b2 = o_.beta2, scale = static_cast<float>(s.clip_scale);
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(b1), step_));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(b2), step_));
  const float lr = static_cast<float>(s.lr), step_size = lr / bc1;
  const float inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  const float decay = 1.0f - lr * o_.weight_decay;
  for (size_t i = 0; i < n; ++i) {
    const float g = grad[i] * scale;
    m_[i] = b1 * m_[i] + (1.0f - b1) * g;
    v_[i] = b2 * v_[i] + (1.0f - b2) * g * g;
    float p = decay_[i] ? params[i] * decay : params[i];
    p -= step_size * m_[i] / (std::sqrt(v_[i]) * inv_sqrt_bc2 + o_.eps);
    params[i] = p;
    grad[i] = 0.0f;
  }
  return s;
}

Status AdamW::Save(const std::string& path) const {
  return compute::SaveAdamWState(path, m_, v_, step_);
}

Status AdamW::Load(const std::string& path) {
  return compute::LoadAdamWState(path, m_.size(), &m_, &v_, &step_);
}

}  // namespace treepo::learner
