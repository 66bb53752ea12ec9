#include "common/model/text_tokenizer.h"

#include <filesystem>

namespace treepo::model {
namespace {

namespace fs = std::filesystem;

class HfText final : public TextTokenizer {
 public:
  explicit HfText(HfTokenizer t) : t_(std::move(t)) {}
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override {
    return t_.Encode(text, add_special_tokens);
  }
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override {
    return t_.Decode(ids, skip_special_tokens);
  }
  int vocab_size() const override { return t_.vocab_size(); }
  std::optional<int32_t> TokenToId(std::string_view token) const override {
    return t_.TokenToId(token);
  }
  std::string_view format() const override { return "tokenizer.json"; }

 private:
  HfTokenizer t_;
};

class Llama2cText final : public TextTokenizer {
 public:
  explicit Llama2cText(Tokenizer t) : t_(std::move(t)) {}
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override {
    return t_.Encode(text, add_special_tokens);
  }
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override {
    std::vector<int32_t> kept;
    for (int32_t id : ids) {
      if (skip_special_tokens && (id == t_.bos_id() || id == t_.eos_id())) continue;
      kept.push_back(id);
    }
    return t_.Decode(kept, /*prev=*/0);
  }
  int vocab_size() const override { return t_.vocab_size(); }
  std::optional<int32_t> TokenToId(std::string_view token) const override {
    for (int32_t id = 0; id < t_.vocab_size(); ++id) {
      if (t_.piece(id) == token) return id;
    }
    return std::nullopt;
  }
  std::string_view format() const override { return "llama2.c"; }

 private:
  Tokenizer t_;
};

}  // namespace

std::unique_ptr<TextTokenizer> WrapTokenizer(HfTokenizer tokenizer) {
  return std::make_unique<HfText>(std::move(tokenizer));
}

std::unique_ptr<TextTokenizer> WrapTokenizer(Tokenizer tokenizer) {
  return std::make_unique<Llama2cText>(std::move(tokenizer));
}

Result<std::string> FindTokenizerFile(const std::string& model_path) {
  std::error_code ec;
  const fs::path dir =
      fs::is_directory(model_path, ec) ? fs::path(model_path) : fs::path(model_path).parent_path();
  for (const char* name : {"tokenizer.json", "tokenizer.bin"}) {
    const fs::path p = dir / name;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return NotFound("no tokenizer.json or tokenizer.bin in " +
                  (dir.empty() ? std::string(".") : dir.string()));
}

Result<std::unique_ptr<TextTokenizer>> LoadTextTokenizer(const std::string& path,
                                                         int llama2c_vocab_size) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound(path + " does not exist");
  std::string file = path;
  if (fs::is_directory(path, ec)) {
    TREEPO_ASSIGN_OR_RETURN(file, FindTokenizerFile(path));
  }
  if (fs::path(file).extension() == ".json") {
    TREEPO_ASSIGN_OR_RETURN(HfTokenizer t, HfTokenizer::Load(file));
    return WrapTokenizer(std::move(t));
  }
  if (llama2c_vocab_size <= 0) {
    return InvalidArgument(file + " is a llama2.c tokenizer: its vocabulary size must be given");
  }
  TREEPO_ASSIGN_OR_RETURN(Tokenizer t, Tokenizer::LoadLlama2c(file, llama2c_vocab_size));
  return WrapTokenizer(std::move(t));
}

}  // namespace treepo::model
