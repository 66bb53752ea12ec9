#include "common/model/llama2c.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/atomic_file.h"
#include "common/file_io.h"

namespace treepo::model {
namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);

static_assert(std::endian::native == std::endian::little, "llama2.c files are little-endian");

// One llama2.c array, in file order. A per-layer array holds every layer one after another.
struct FileArray {
  size_t LayerOffsets::*member;  // nullptr for a whole-model tensor
  size_t whole_offset;           // used when member is nullptr
  size_t numel;                  // per layer, or in total
};

std::vector<FileArray> BodyArrays(const ModelConfig& c, const ParamLayout& layout) {
  const size_t dim = c.dim, hid = c.hidden_dim, kv = c.kv_dim();
  return {
      {nullptr, layout.embed(), static_cast<size_t>(c.vocab_size) * dim},
      {&LayerOffsets::attn_norm, 0, dim},
      {&LayerOffsets::wq, 0, dim * dim},
      {&LayerOffsets::wk, 0, kv * dim},
      {&LayerOffsets::wv, 0, kv * dim},
      {&LayerOffsets::wo, 0, dim * dim},
      {&LayerOffsets::ffn_norm, 0, dim},
      {&LayerOffsets::w1, 0, hid * dim},
      {&LayerOffsets::w2, 0, dim * hid},
      {&LayerOffsets::w3, 0, hid * dim},
      {nullptr, layout.final_norm(), dim},
  };
}

// Floats of the legacy freq_cis_real + freq_cis_imag arrays.
size_t FreqCisFloats(const ModelConfig& c) {
  return static_cast<size_t>(c.max_seq_len) * static_cast<size_t>(c.head_dim());
}

// Visits (file float index, buffer offset, count) for every array in file order except the
// freq_cis gap, which is reported with buffer offset ParamLayout::kNone.
template <typename Fn>
void ForEachSpan(const ModelConfig& c, const ParamLayout& layout, Fn&& fn) {
  size_t file_pos = 0;
  for (const FileArray& a : BodyArrays(c, layout)) {
    if (a.member == nullptr) {
      fn(file_pos, a.whole_offset, a.numel);
      file_pos += a.numel;
      continue;
    }
    for (int l = 0; l < c.n_layers; ++l) {
      fn(file_pos, layout.layer(l).*a.member, a.numel);
      file_pos += a.numel;
    }
  }
  fn(file_pos, ParamLayout::kNone, FreqCisFloats(c));
  file_pos += FreqCisFloats(c);
  if (!c.tied_embeddings) {
    fn(file_pos, layout.lm_head(), static_cast<size_t>(c.vocab_size) * c.dim);
  }
}

}  // namespace

Result<ModelWeights> LoadLlama2cCheckpoint(const std::string& path) {
  const std::string where = "llama2.c checkpoint " + path + ": ";
  TREEPO_RETURN_IF_ERROR(CheckReadableFile(path, "llama2.c checkpoint"));
  std::error_code ec;
  const uint64_t file_bytes = std::filesystem::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) return NotFound(where + "cannot open");
  if (file_bytes < kHeaderBytes) {
    return DataLoss(where + "file has " + std::to_string(file_bytes) +
                    " bytes, shorter than the 28-byte header");
  }
  int32_t h[7];
  in.read(reinterpret_cast<char*>(h), kHeaderBytes);
  if (h[0] == 0x616b3432) {  // "ak42": llama2.c's newer versioned exports
    return InvalidArgument(where + "a versioned llama2.c export (magic ak42, version " +
                           std::to_string(h[1]) + "); only the legacy format is read");
  }
  ModelConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_embeddings = h[5] > 0;
  // INT32_MIN has no positive counterpart; Validate() refuses the 0 it maps to.
  c.vocab_size = h[5] == INT32_MIN ? 0 : std::abs(h[5]);
  c.max_seq_len = h[6];
  c.rope_layout = RopeLayout::kAdjacentPairs;
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  if (Status s = c.Validate(); !s.ok()) return s.WithContext(where + "bad header");

  // Check the size before allocating: a corrupt header may claim terabytes.
  ModelWeights w;
  w.config = c;
  w.layout = ParamLayout(c);
  uint64_t file_floats = 0;
  ForEachSpan(c, w.layout, [&](size_t pos, size_t, size_t n) { file_floats = pos + n; });
  const uint64_t expected = kHeaderBytes + file_floats * sizeof(float);
  if (file_bytes != expected) {
    return DataLoss(where + "header (" + c.ToString() + ") implies " + std::to_string(expected) +
                    " bytes but the file has " + std::to_string(file_bytes) +
                    (file_bytes < expected ? " (truncated)" : " (trailing bytes)"));
  }
  w.data.assign(w.layout.total(), 0.0f);
  ForEachSpan(c, w.layout, [&](size_t pos, size_t off, size_t n) {
    if (off == ParamLayout::kNone) return;
    in.seekg(static_cast<std::streamoff>(kHeaderBytes + pos * sizeof(float)));
    in.read(reinterpret_cast<char*>(w.at(off)), static_cast<std::streamsize>(n * sizeof(float)));
  });
  if (!in) return DataLoss(where + "read failed");
  for (const TensorInfo& t : w.layout.tensors()) {
    const float* p = w.at(t.offset);
    for (size_t i = 0; i < t.numel; ++i) {
      if (!std::isfinite(p[i])) {
        return DataLoss(where + "tensor " + t.name + " has a non-finite value (" +
                        std::to_string(p[i]) + ") at element " + std::to_string(i));
      }
    }
  }
  return w;
}

Status SaveLlama2cCheckpoint(const ModelWeights& weights, const std::string& path) {
  const ModelConfig& c = weights.config;
  TREEPO_RETURN_IF_ERROR(c.Validate());
  if (c.rope_layout != RopeLayout::kAdjacentPairs || c.qkv_bias) {
    return InvalidArgument("llama2.c format needs adjacent-pair RoPE and no QKV bias: " +
                           c.ToString());
  }
  if (weights.data.size() != weights.layout.total()) {
    return InvalidArgument("weights hold " + std::to_string(weights.data.size()) +
                           " floats, layout needs " + std::to_string(weights.layout.total()));
  }
  const int32_t header[7] = {c.dim,        c.hidden_dim,
                             c.n_layers,   c.n_heads,
                             c.n_kv_heads, c.tied_embeddings ? c.vocab_size : -c.vocab_size,
                             c.max_seq_len};
  TREEPO_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::Create(path));
  Status written = OkStatus();
  auto write = [&](const void* p, size_t bytes) {
    if (written.ok()) written = out.Append(std::string_view(static_cast<const char*>(p), bytes));
  };
  write(header, sizeof(header));
  // The legacy freq_cis arrays are written as llama2.c's export does, so other readers that
  // still use them get the right values.
  const int half = c.head_dim() / 2;
  std::vector<float> freq_real, freq_imag;
  for (int pos = 0; pos < c.max_seq_len; ++pos) {
    for (int i = 0; i < half; ++i) {
      const double freq = 1.0 / std::pow(double{c.rope_theta}, 2.0 * i / c.head_dim());
      freq_real.push_back(static_cast<float>(std::cos(pos * freq)));
      freq_imag.push_back(static_cast<float>(std::sin(pos * freq)));
    }
  }
  ForEachSpan(c, weights.layout, [&](size_t, size_t off, size_t n) {
    if (off == ParamLayout::kNone) {
      write(freq_real.data(), freq_real.size() * sizeof(float));
      write(freq_imag.data(), freq_imag.size() * sizeof(float));
    } else {
      write(weights.at(off), n * sizeof(float));
    }
  });
  TREEPO_RETURN_IF_ERROR(written);
  return out.Commit();
}

}  // namespace treepo::model
