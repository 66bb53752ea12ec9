#include "learner/adamw.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "common/model/safetensors.h"

namespace treepo::learner {

Status AdamWOptions::Validate() const {
  if (!(lr >= 0.0f) || !std::isfinite(lr)) return InvalidArgument("lr must be >= 0");
  if (!(beta1 >= 0.0f && beta1 < 1.0f)) return InvalidArgument("beta1 must be in [0, 1)");
  if (!(beta2 >= 0.0f && beta2 < 1.0f)) return InvalidArgument("beta2 must be in [0, 1)");
  if (!(eps > 0.0f)) return InvalidArgument("eps must be > 0");
  if (!(weight_decay >= 0.0f)) return InvalidArgument("weight_decay must be >= 0");
  if (warmup_steps < 0) return InvalidArgument("warmup_steps must be >= 0");
  if (decay_steps < 0) return InvalidArgument("decay_steps must be >= 0");
  if (!(min_lr_ratio >= 0.0f && min_lr_ratio <= 1.0f)) {
    return InvalidArgument("min_lr_ratio must be in [0, 1]");
  }
  if (!std::isfinite(max_grad_norm)) return InvalidArgument("max_grad_norm must be finite");
  return OkStatus();
}

AdamW::AdamW(const model::ParamLayout& layout, const AdamWOptions& options) : o_(options) {
  TREEPO_CHECK_OK(options.Validate());
  decay_.assign(layout.total(), 0);
  for (const model::TensorInfo& t : layout.tensors()) {
    const bool decay = t.shape.size() >= 2 || o_.decay_vectors;
    std::fill_n(decay_.begin() + t.offset, t.numel, decay ? 1 : 0);
  }
  m_.assign(layout.total(), 0.0f);
  v_.assign(layout.total(), 0.0f);
}

double AdamW::LearningRate(int64_t step) const {
  if (o_.warmup_steps > 0 && step < o_.warmup_steps) {
    return o_.lr * static_cast<double>(step) / static_cast<double>(o_.warmup_steps);
  }
  if (o_.decay_steps <= o_.warmup_steps) return o_.lr;
  const double progress = std::min(1.0, static_cast<double>(step - o_.warmup_steps) /
                                            static_cast<double>(o_.decay_steps - o_.warmup_steps));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return o_.lr * (o_.min_lr_ratio + (1.0 - o_.min_lr_ratio) * cosine);
}

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
  std::map<std::string, model::NamedTensor> t;
  const int64_t n = static_cast<int64_t>(m_.size());
  t["m"] = model::NamedTensor{{n}, m_};
  t["v"] = model::NamedTensor{{n}, v_};
  return model::SaveSafetensors(
      path, t, {{"step", std::to_string(step_)}, {"num_params", std::to_string(n)}});
}

Status AdamW::Load(const std::string& path) {
  std::map<std::string, std::string> meta;
  TREEPO_ASSIGN_OR_RETURN(auto t, model::LoadSafetensors(path, &meta));
  auto m = t.find("m"), v = t.find("v");
  if (m == t.end() || v == t.end()) return InvalidArgument(path + ": needs tensors m and v");
  if (m->second.data.size() != m_.size() || v->second.data.size() != v_.size()) {
    return InvalidArgument(path + ": optimiser state for " + std::to_string(m->second.data.size()) +
                           " parameters, model has " + std::to_string(m_.size()));
  }
  auto st = meta.find("step");
  if (st == meta.end()) return InvalidArgument(path + ": no step in metadata");
  int64_t step = -1;
  try {
    step = std::stoll(st->second);
  } catch (const std::exception&) {
    step = -1;
  }
  if (step < 0) return InvalidArgument(path + ": bad step '" + st->second + "'");
  m_ = std::move(m->second.data);
  v_ = std::move(v->second.data);
  step_ = step;
  return OkStatus();
}

}  // namespace treepo::learner
