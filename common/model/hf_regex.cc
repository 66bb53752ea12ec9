#define PCRE2_CODE_UNIT_WIDTH 8
#include "common/model/hf_regex.h"

#include <pcre2.h>

#include "common/utf8.h"

namespace treepo::model::hf {

struct Regex::Handle {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Handle() { pcre2_code_free(code); }
};

Result<Regex> Regex::Compile(std::string_view pattern, bool literal) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  uint32_t options = PCRE2_UTF | PCRE2_UCP;
  if (literal) options = PCRE2_UTF | PCRE2_LITERAL;  // UCP is not allowed with LITERAL
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(error, msg, sizeof(msg));
    return InvalidArgument("regex '" + std::string(pattern) + "' at offset " +
                           std::to_string(offset) + ": " + reinterpret_cast<char*>(msg));
  }
  auto handle = std::make_shared<Handle>();
  handle->code = code;
  handle->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  Regex r;
  r.handle_ = std::move(handle);
  return r;
}

std::vector<std::pair<size_t, size_t>> Regex::FindAll(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(handle_->code, nullptr);
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc = handle_->jit
                       ? pcre2_jit_match(handle_->code, subject, text.size(), start, 0, md, nullptr)
                       : pcre2_match(handle_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                                     md, nullptr);
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH, or a resource limit: no further matches
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e == b) {  // an empty match: step over one character
      if (b >= text.size()) break;
      start = b + Utf8CharLength(static_cast<unsigned char>(text[b]));
      continue;
    }
    out.emplace_back(b, e);
    start = e;
  }
  pcre2_match_data_free(md);
  return out;
}

Result<Regex> CompilePattern(const nlohmann::json& pattern) {
  if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
    return Regex::Compile(pattern["String"].get<std::string>(), /*literal=*/true);
  }
  if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
    return Regex::Compile(pattern["Regex"].get<std::string>());
  }
  return InvalidArgument("pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace treepo::model::hf
