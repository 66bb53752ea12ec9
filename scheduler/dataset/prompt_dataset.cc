#include "scheduler/dataset/prompt_dataset.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "common/check.h"
#include "common/file_io.h"
#include "common/json_file.h"
#include "common/json_number.h"

namespace treepo::scheduler {
namespace {

using nlohmann::json;

std::string Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// A JSON scalar as answer text: strings as is, integral numbers without ".0".
std::string ScalarText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
      return std::to_string(static_cast<int64_t>(d));
    }
  }
  return v.dump();
}

Result<std::optional<std::string>> AnswerOf(const json& obj, const PromptFileOptions& options) {
  if (options.answer_field.empty()) return std::optional<std::string>();
  auto it = obj.find(options.answer_field);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  std::string raw;
  if (it->is_array()) {
    for (const json& e : *it) {
      if (!raw.empty()) raw += ", ";
      raw += ScalarText(e);
    }
  } else if (it->is_object()) {
    return InvalidArgument("field '" + options.answer_field + "' is an object");
  } else {
    raw = ScalarText(*it);
  }
  AnswerMode mode = options.answer_mode;
  if (mode == AnswerMode::kAuto) {
    mode = raw.find("####") != std::string::npos ? AnswerMode::kHashTail : AnswerMode::kPlain;
  }
  switch (mode) {
    case AnswerMode::kPlain:
    case AnswerMode::kAuto:
      return std::optional<std::string>(raw);
    case AnswerMode::kHashTail: {
      std::optional<std::string> a = ExtractHashAnswer(raw);
      if (!a) return InvalidArgument("field '" + options.answer_field + "' has no '####'");
      return a;
    }
    case AnswerMode::kLastBoxed: {
      std::optional<std::string> a = ExtractLastBoxed(raw);
      if (!a) return InvalidArgument("field '" + options.answer_field + "' has no \\boxed{}");
      return a;
    }
  }
  return Internal("unknown answer mode");
}

}  // namespace

Result<AnswerMode> ParseAnswerMode(std::string_view name) {
  if (name == "plain") return AnswerMode::kPlain;
  if (name == "gsm8k_hash") return AnswerMode::kHashTail;
  if (name == "last_boxed") return AnswerMode::kLastBoxed;
  if (name == "auto") return AnswerMode::kAuto;
  return InvalidArgument("answer mode '" + std::string(name) +
                         "': expected plain, gsm8k_hash, last_boxed or auto");
}

Result<PromptFileOptions> MathEvalOptions(std::string_view set_name) {
  PromptFileOptions o;
  o.prompt_field = "problem";
  o.answer_field = "answer";
  o.answer_mode = AnswerMode::kPlain;
  if (set_name == "aime24" || set_name == "amc23") return o;
  if (set_name == "math500") {
    o.id_field = "unique_id";
    return o;
  }
  if (set_name == "minerva_math") {
    o.answer_field = "solution";
    o.answer_mode = AnswerMode::kLastBoxed;
    o.id_field = "idx";
    return o;
  }
  if (set_name == "olympiadbench") {
    o.prompt_field = "question";
    o.answer_field = "final_answer";
    return o;
  }
  if (set_name == "gsm8k") {
    o.prompt_field = "question";
    o.answer_mode = AnswerMode::kHashTail;
    o.id_field = "idx";
    return o;
  }
  return InvalidArgument("unknown math-eval set '" + std::string(set_name) +
                         "' (aime24, amc23, math500, minerva_math, olympiadbench, gsm8k)");
}

std::optional<std::string> ExtractLastBoxed(std::string_view text) {
  size_t best = std::string_view::npos, best_len = 0;
  for (std::string_view tag : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    const size_t at = text.rfind(tag);
    if (at != std::string_view::npos && (best == std::string_view::npos || at > best)) {
      best = at;
      best_len = tag.size();
    }
  }
  if (best == std::string_view::npos) return std::nullopt;
  size_t i = best + best_len;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i >= text.size() || text[i] != '{') return std::nullopt;
  int depth = 0;
  for (size_t j = i; j < text.size(); ++j) {
    if (text[j] == '{') ++depth;
    if (text[j] == '}' && --depth == 0) return std::string(text.substr(i + 1, j - i - 1));
  }
  return std::nullopt;
}

std::optional<std::string> ExtractHashAnswer(std::string_view text) {
  const size_t at = text.rfind("####");
  if (at == std::string_view::npos) return std::nullopt;
  std::string a = Trim(text.substr(at + 4));
  a.erase(std::remove(a.begin(), a.end(), ','), a.end());
  return a;
}

Result<std::vector<PromptRecord>> ParsePromptLines(std::string_view text,
                                                   const PromptFileOptions& options,
                                                   std::string_view source) {
  if (options.prompt_field.empty()) return InvalidArgument("prompt field name is empty");
  std::vector<PromptRecord> records;
  size_t start = 0;
  for (int64_t line_no = 1; start < text.size(); ++line_no) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    const std::string where = std::string(source) + ":" + std::to_string(line_no) + ": ";
    if (Trim(line).empty()) continue;
    Result<json> parsed = ParseJsonText(line);
    if (!parsed.ok()) return InvalidArgument(where + parsed.status().message());
    const json& obj = *parsed;
    if (!obj.is_object()) return InvalidArgument(where + "not a JSON object");
    PromptRecord r;
    auto p = obj.find(options.prompt_field);
    if (p == obj.end() || !p->is_string()) {
      return InvalidArgument(where + "no string field '" + options.prompt_field + "'");
    }
    r.prompt = p->get<std::string>();
    auto id = options.id_field.empty() ? obj.end() : obj.find(options.id_field);
    if (id == obj.end() || id->is_null()) {
      r.id = std::to_string(line_no);
    } else if (id->is_string() || id->is_number_integer()) {
      r.id = id->is_string() ? id->get<std::string>() : id->dump();
    } else if (id->is_number_float()) {
      Result<int64_t> n = JsonToInt<int64_t>(*id, "field '" + options.id_field + "'");
      if (!n.ok()) return InvalidArgument(where + n.status().message());
      r.id = std::to_string(*n);
    } else {
      return InvalidArgument(where + "field '" + options.id_field +
                             "' must be a string or an integer");
    }
    Result<std::optional<std::string>> answer = AnswerOf(obj, options);
    if (!answer.ok()) return answer.status().WithContext(where.substr(0, where.size() - 2));
    r.answer = std::move(*answer);
    records.push_back(std::move(r));
  }
  return records;
}

Result<std::vector<PromptRecord>> LoadPromptFile(const std::string& path,
                                                 const PromptFileOptions& options) {
  TREEPO_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path, "prompt file"));
  return ParsePromptLines(text, options, path);
}

DatasetCursor::DatasetCursor(int64_t size, bool shuffle, uint64_t seed)
    : size_(size), shuffle_(shuffle), seed_(seed) {
  TREEPO_CHECK_GT(size, 0);
  BuildOrder();
}

void DatasetCursor::BuildOrder() {
  order_.resize(size_);
  std::iota(order_.begin(), order_.end(), int64_t{0});
  if (!shuffle_) return;
  // Fisher-Yates with a generator seeded by (seed, epoch): reproducible across platforms
  // (std::shuffle's use of the generator is implementation-defined).
  std::mt19937_64 rng(seed_ ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(epoch_ + 1)));
  for (int64_t i = size_ - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(order_[i], order_[j]);
  }
}

int64_t DatasetCursor::Next() {
  if (offset_ == size_) {
    ++epoch_;
    offset_ = 0;
    BuildOrder();
  }
  return order_[offset_++];
}

Status DatasetCursor::Seek(Position position) {
  if (position.epoch < 0 || position.offset < 0 || position.offset > size_) {
    return InvalidArgument("dataset cursor: position (epoch " + std::to_string(position.epoch) +
                           ", offset " + std::to_string(position.offset) + ") outside a set of " +
                           std::to_string(size_));
  }
  epoch_ = position.epoch;
  offset_ = position.offset;
  BuildOrder();
  return OkStatus();
}

}  // namespace treepo::scheduler
