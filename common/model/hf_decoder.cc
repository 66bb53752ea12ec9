#include "common/model/hf_decoder.h"

#include "common/model/hf_byte_level.h"
#include "common/model/hf_regex.h"
#include "common/utf8.h"

namespace treepo::model::hf {
namespace {

class ByteLevelDec final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& t : *tokens) {
      // A token with a character outside the alphabet (an added token) is taken as it is.
      if (!ByteLevelToBytes(t, &bytes)) bytes += t;
    }
    tokens->assign(1, Utf8Lossy(bytes));
  }
};

class MetaspaceDec final : public Decoder {
 public:
  MetaspaceDec(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string out;
      const std::string& t = (*tokens)[i];
      size_t pos = 0;
      // As the tokenizers library: every replacement in the first token is dropped (the
      // prepended one is at its start), the others become spaces.
      while (pos < t.size()) {
        if (t.compare(pos, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && strip_first_)) out.push_back(' ');
          pos += replacement_.size();
        } else {
          out.push_back(t[pos++]);
        }
      }
      (*tokens)[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class ReplaceDec final : public Decoder {
 public:
  ReplaceDec(Regex re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      std::string out;
      size_t last = 0;
      for (const auto& [b, e] : re_.FindAll(t)) {
        out.append(t, last, b - last);
        out += content_;
        last = e;
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  Regex re_;
  std::string content_;
};

// "<0xAB>" -> 0xAB, or -1.
int ByteToken(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = t[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

class ByteFallbackDec final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t n_bytes = 0;
    const auto flush = [&] {
      if (n_bytes == 0) return;
      if (IsValidUtf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < n_bytes; ++i) out.emplace_back(kReplacementChar);
      }
      bytes.clear();
      n_bytes = 0;
    };
    for (std::string& t : *tokens) {
      const int b = ByteToken(t);
      if (b >= 0) {
        bytes.push_back(static_cast<char>(b));
        ++n_bytes;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    *tokens = std::move(out);
  }
};

class FuseDec final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const std::string& t : *tokens) all += t;
    tokens->assign(1, std::move(all));
  }
};

class StripDec final : public Decoder {
 public:
  StripDec(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      size_t b = 0, e = t.size();
      for (size_t i = 0; i < start_ && t.compare(b, content_.size(), content_) == 0 && b < e; ++i) {
        b += content_.size();
      }
      for (size_t i = 0; i < stop_ && e >= b + content_.size() &&
                         t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class SequenceDec final : public Decoder {
 public:
  explicit SequenceDec(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& p : parts_) p->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

Result<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& spec) {
  if (spec.is_null()) return std::unique_ptr<Decoder>();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return InvalidArgument("decoder: an object with a \"type\" is expected");
  }
  const std::string type = spec["type"];
  try {
    if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDec());
    if (type == "Metaspace") {
      bool strip_first = spec.value("add_prefix_space", true);
      if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()) {
        strip_first = spec["prepend_scheme"].get<std::string>() != "never";
      }
      return std::unique_ptr<Decoder>(
          new MetaspaceDec(spec.value("replacement", std::string("\xE2\x96\x81")), strip_first));
    }
    if (type == "Replace") {
      if (!spec.contains("pattern") || !spec.contains("content") || !spec["content"].is_string()) {
        return InvalidArgument("decoder Replace: \"pattern\" and \"content\" are required");
      }
      auto re = CompilePattern(spec["pattern"]);
      if (!re.ok()) return re.status().WithContext("decoder Replace");
      return std::unique_ptr<Decoder>(
          new ReplaceDec(std::move(re).value(), spec["content"].get<std::string>()));
    }
    if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDec());
    if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDec());
    if (type == "Strip") {
      const std::string content = spec.value("content", std::string(" "));
      if (content.empty()) return InvalidArgument("decoder Strip: empty content");
      return std::unique_ptr<Decoder>(
          new StripDec(content, spec.value("start", size_t{0}), spec.value("stop", size_t{0})));
    }
    if (type == "Sequence") {
      if (!spec.contains("decoders") || !spec["decoders"].is_array()) {
        return InvalidArgument("decoder Sequence: \"decoders\" must be an array");
      }
      std::vector<std::unique_ptr<Decoder>> parts;
      for (const auto& s : spec["decoders"]) {
        TREEPO_ASSIGN_OR_RETURN(auto d, MakeDecoder(s));
        if (d) parts.push_back(std::move(d));
      }
      return std::unique_ptr<Decoder>(new SequenceDec(std::move(parts)));
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument("decoder " + type + ": " + e.what());
  }
  return InvalidArgument("decoder type '" + type + "' is not supported");
}

}  // namespace treepo::model::hf
