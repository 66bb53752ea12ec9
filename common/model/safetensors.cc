// safetensors files: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the data buffer; offsets are relative to the buffer, and the tensors tile it exactly.
#include "common/model/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/file_io.h"

namespace treepo::model {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors is little-endian");

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr uint64_t kMaxElements = uint64_t{1} << 40;

// Bytes per element of a supported dtype, 0 otherwise.
int DtypeBytes(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  return 0;
}

struct Entry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// Parses and checks one header entry against a body of `body_bytes`.
Result<Entry> ParseEntry(const std::string& name, const nlohmann::json& j, uint64_t body_bytes) {
  auto bad = [&](const std::string& why) { return DataLoss("tensor '" + name + "': " + why); };
  if (!j.is_object()) return bad("header entry is not an object");
  Entry e;
  e.name = name;
  if (!j.contains("dtype") || !j["dtype"].is_string()) return bad("missing dtype");
  e.dtype = j["dtype"].get<std::string>();
  if (!j.contains("shape") || !j["shape"].is_array()) return bad("missing shape");
  uint64_t numel = 1;
  for (const auto& d : j["shape"]) {
    if (!d.is_number_unsigned()) return bad("shape has a non-integer or negative dimension");
    const uint64_t n = d.get<uint64_t>();
    if (n > kMaxElements || (n > 0 && numel > kMaxElements / n)) return bad("shape too large");
    numel *= n;
    e.shape.push_back(static_cast<int64_t>(n));
  }
  const auto& off = j.contains("data_offsets") ? j["data_offsets"] : nlohmann::json();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned()) {
    return bad("data_offsets must be two non-negative integers");
  }
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  if (e.begin > e.end || e.end > body_bytes) {
    return bad("data_offsets [" + std::to_string(e.begin) + "," + std::to_string(e.end) +
               ") outside the " + std::to_string(body_bytes) + "-byte data buffer");
  }
  const int width = DtypeBytes(e.dtype);
  if (width == 0) {
    return InvalidArgument("tensor '" + name + "': unsupported dtype " + e.dtype +
                           " (F32, F16, BF16 are read)");
  }
  if (e.end - e.begin != numel * width) {
    return bad("shape " + ShapeToString(e.shape) + " " + e.dtype + " needs " +
               std::to_string(numel * width) + " bytes, data_offsets give " +
               std::to_string(e.end - e.begin));
  }
  return e;
}

}  // namespace

std::string ShapeToString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(shape[i]);
  }
  s += ']';
  return s;
}

Status SaveSafetensors(const std::string& path, const std::map<std::string, NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || name.empty()) {
      return InvalidArgument("safetensors: invalid tensor name '" + name + "'");
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) return InvalidArgument("tensor '" + name + "' has a negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    const bool half = t.dtype != WeightDtype::kF32;
    const size_t width = half ? sizeof(uint16_t) : sizeof(float);
    if (numel != (half ? t.half.size() : t.data.size())) {
      return InvalidArgument("tensor '" + name + "' has shape " + ShapeToString(t.shape) + " but " +
                             std::to_string(half ? t.half.size() : t.data.size()) + " values");
    }
    header[name] = {{"dtype", DtypeName(t.dtype)},
                    {"shape", t.shape},
                    {"data_offsets", {offset, offset + numel * width}}};
    offset += numel * width;
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');  // pad so the data buffer is 8-byte aligned
  const uint64_t len = text.size();
  TREEPO_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::Create(path));
  TREEPO_RETURN_IF_ERROR(
      out.Append(std::string_view(reinterpret_cast<const char*>(&len), sizeof(len))));
  TREEPO_RETURN_IF_ERROR(out.Append(text));
  for (const auto& [name, t] : tensors) {
    if (t.dtype != WeightDtype::kF32) {
      TREEPO_RETURN_IF_ERROR(out.Append(std::string_view(
          reinterpret_cast<const char*>(t.half.data()), t.half.size() * sizeof(uint16_t))));
      continue;
    }
    TREEPO_RETURN_IF_ERROR(out.Append(std::string_view(reinterpret_cast<const char*>(t.data.data()),
                                                       t.data.size() * sizeof(float))));
  }
  return out.Commit();
}

Result<std::map<std::string, NamedTensor>> LoadSafetensors(
    const std::string& path, std::map<std::string, std::string>* metadata, bool keep_16bit) {
  const std::string where = "safetensors " + path + ": ";
  TREEPO_RETURN_IF_ERROR(CheckReadableFile(path, "safetensors file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(where + "cannot open");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  uint64_t header_len = 0;
  if (bytes.size() < sizeof(header_len)) return DataLoss(where + "shorter than the 8-byte prefix");
  std::memcpy(&header_len, bytes.data(), sizeof(header_len));
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - sizeof(header_len)) {
    return DataLoss(where + "header length " + std::to_string(header_len) + " exceeds the " +
                    std::to_string(bytes.size()) + "-byte file (or the 100 MB limit)");
  }
  const char* header_begin = bytes.data() + sizeof(header_len);
  const nlohmann::json header =
      nlohmann::json::parse(header_begin, header_begin + header_len, nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return DataLoss(where + "header is not a JSON object");
  }
  const uint64_t body_bytes = bytes.size() - sizeof(header_len) - header_len;
  const char* body = header_begin + header_len;

  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) return DataLoss(where + "__metadata__ is not an object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) return DataLoss(where + "__metadata__ value '" + k + "' not a string");
        if (metadata != nullptr) (*metadata)[k] = v.get<std::string>();
      }
      continue;
    }
    Result<Entry> e = ParseEntry(name, value, body_bytes);
    if (!e.ok()) return e.status().WithContext(where);
    entries.push_back(std::move(e).value());
  }
  // The tensors must tile the buffer: no overlap, no gap, no trailing bytes.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  for (const Entry* e : by_offset) {
    if (e->begin != cursor) {
      return DataLoss(where + "tensor '" + e->name + "' starts at byte " +
                      std::to_string(e->begin) + ", expected " + std::to_string(cursor) +
                      (e->begin < cursor ? " (overlaps the previous tensor)" : " (gap)"));
    }
    cursor = e->end;
  }
  if (cursor != body_bytes) {
    return DataLoss(where + "tensors cover " + std::to_string(cursor) + " of " +
                    std::to_string(body_bytes) + " data bytes");
  }

  std::map<std::string, NamedTensor> out;
  for (const Entry& e : entries) {
    NamedTensor t;
    t.shape = e.shape;
    const char* src = body + e.begin;
    const size_t n = (e.end - e.begin) / DtypeBytes(e.dtype);
    if (keep_16bit && e.dtype != "F32") {
      t.dtype = e.dtype == "F16" ? WeightDtype::kF16 : WeightDtype::kBF16;
      t.half.resize(n);
      if (n > 0) std::memcpy(t.half.data(), src, n * sizeof(uint16_t));
      out.emplace(e.name, std::move(t));
      continue;
    }
    t.data.resize(n);
    if (e.dtype == "F32") {
      if (n > 0) std::memcpy(t.data.data(), src, n * sizeof(float));
    } else {
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        t.data[i] = e.dtype == "F16" ? F16ToFloat(h) : Bf16ToFloat(h);
      }
    }
    out.emplace(e.name, std::move(t));
  }
  return out;
}

}  // namespace treepo::model
