#include "common/jinja/lexer.h"

#include <cctype>
#include <cstdlib>

#include "common/jinja/error.h"
#include "common/utf8.h"

namespace treepo::jinja {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

class Lexer {
 public:
  Lexer(std::string_view src, const LexOptions& o) : src_(src), o_(o) {}

  std::vector<Token> Run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t k = src_.find('{', pos);
      while (k != std::string_view::npos && k + 1 < src_.size() && src_[k + 1] != '{' &&
             src_[k + 1] != '%' && src_[k + 1] != '#') {
        k = src_.find('{', k + 1);
      }
      if (k != std::string_view::npos && k + 1 >= src_.size()) k = std::string_view::npos;
      const bool line_starting = pos == 0 || src_[pos - 1] == '\n';
      std::string text(
          src_.substr(pos, k == std::string_view::npos ? std::string_view::npos : k - pos));
      if (k == std::string_view::npos) {
        EmitText(std::move(text));
        break;
      }
      const char kind = src_[k + 1];
      const char ctrl = k + 2 < src_.size() ? src_[k + 2] : '\0';
      if (ctrl == '-') {
        size_t e = text.size();
        while (e > 0 && IsSpace(text[e - 1])) --e;
        text.resize(e);
      } else if (ctrl != '+' && o_.lstrip_blocks && kind != '{') {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if (l_pos > 0 || line_starting) {
          bool all_space = l_pos < text.size();
          for (size_t i = l_pos; i < text.size(); ++i) all_space = all_space && IsSpace(text[i]);
          if (all_space) text.resize(l_pos);
        }
      }
      EmitText(std::move(text));
      line_ += Count('\n', pos, k);
      pos = k + 2 + ((ctrl == '-' || ctrl == '+') ? 1 : 0);
      char close_ctrl = '\0';
      if (kind == '#') {
        const size_t e = src_.find("#}", pos);
        if (e == std::string_view::npos) Fail(Where() + "unterminated comment");
        close_ctrl = e > pos && (src_[e - 1] == '-' || src_[e - 1] == '+') ? src_[e - 1] : '\0';
        line_ += Count('\n', pos, e);
        pos = e + 2;
      } else {
        out_.push_back(
            {kind == '{' ? Token::Kind::kVarBegin : Token::Kind::kBlockBegin, "", 0, 0, line_});
        pos = LexTag(pos, kind == '{' ? '}' : '%', &close_ctrl);
        out_.push_back(
            {kind == '{' ? Token::Kind::kVarEnd : Token::Kind::kBlockEnd, "", 0, 0, line_});
      }
      if (close_ctrl == '-') {
        while (pos < src_.size() && IsSpace(src_[pos])) {
          if (src_[pos] == '\n') ++line_;
          ++pos;
        }
      } else if (kind != '{' && o_.trim_blocks && close_ctrl != '+') {
        if (pos < src_.size() && src_[pos] == '\n') {
          ++pos;
          ++line_;
        } else if (pos + 1 < src_.size() && src_[pos] == '\r' && src_[pos + 1] == '\n') {
          pos += 2;
          ++line_;
        }
      }
    }
    out_.push_back({Token::Kind::kEnd, "", 0, 0, line_});
    return std::move(out_);
  }

 private:
  std::string Where() const { return "line " + std::to_string(line_) + ": "; }

  int Count(char c, size_t b, size_t e) const {
    int n = 0;
    for (size_t i = b; i < e && i < src_.size(); ++i) n += src_[i] == c;
    return n;
  }

  void EmitText(std::string text) {
    if (!text.empty()) out_.push_back({Token::Kind::kText, std::move(text), 0, 0, line_});
  }

  // Tokens of a tag's inside from `pos` to its closing "<close>}" (optionally preceded by
  // - or +, stored in *ctrl); returns the position after the closing delimiter.
  size_t LexTag(size_t pos, char close, char* ctrl) {
    static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                       "/",  "%",  "~",  "<",  ">",  "(",  ")", "[", "]",
                                       "{",  "}",  ",",  ".",  ":",  "|",  "="};
    while (true) {
      while (pos < src_.size() && IsSpace(src_[pos])) {
        if (src_[pos] == '\n') ++line_;
        ++pos;
      }
      if (pos >= src_.size()) Fail(Where() + "unterminated tag");
      const std::string_view rest = src_.substr(pos);
      for (char c : {'-', '+'}) {
        if (rest.size() >= 3 && rest[0] == c && rest[1] == close && rest[2] == '}') {
          *ctrl = c;
          return pos + 3;
        }
      }
      if (rest.size() >= 2 && rest[0] == close && rest[1] == '}') {
        *ctrl = '\0';
        return pos + 2;
      }
      const char c = rest[0];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = 1;
        while (e < rest.size() &&
               (std::isalnum(static_cast<unsigned char>(rest[e])) || rest[e] == '_'))
          ++e;
        out_.push_back({Token::Kind::kName, std::string(rest.substr(0, e)), 0, 0, line_});
        pos += e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = 0;
        while (e < rest.size() && std::isdigit(static_cast<unsigned char>(rest[e]))) ++e;
        bool is_float = false;
        if (e + 1 < rest.size() && rest[e] == '.' &&
            std::isdigit(static_cast<unsigned char>(rest[e + 1]))) {
          is_float = true;
          ++e;
          while (e < rest.size() && std::isdigit(static_cast<unsigned char>(rest[e]))) ++e;
        }
        if (e < rest.size() && (rest[e] == 'e' || rest[e] == 'E')) {
          size_t f = e + 1;
          if (f < rest.size() && (rest[f] == '+' || rest[f] == '-')) ++f;
          if (f < rest.size() && std::isdigit(static_cast<unsigned char>(rest[f]))) {
            is_float = true;
            e = f;
            while (e < rest.size() && std::isdigit(static_cast<unsigned char>(rest[e]))) ++e;
          }
        }
        const std::string num(rest.substr(0, e));
        Token t{is_float ? Token::Kind::kFloat : Token::Kind::kInt, num, 0, 0, line_};
        if (is_float) {
          t.float_value = std::strtod(num.c_str(), nullptr);
        } else {
          t.int_value = std::strtoll(num.c_str(), nullptr, 10);
        }
        out_.push_back(std::move(t));
        pos += e;
      } else if (c == '\'' || c == '"') {
        pos = LexString(pos);
      } else {
        bool matched = false;
        for (const char* op : kOps) {
          const std::string_view o(op);
          if (rest.substr(0, o.size()) == o) {
            out_.push_back({Token::Kind::kOperator, std::string(o), 0, 0, line_});
            pos += o.size();
            matched = true;
            break;
          }
        }
        if (!matched) Fail(Where() + "unexpected character '" + std::string(1, c) + "'");
      }
    }
  }

  // A quoted string at `pos` with Python escapes; returns the position after it.
  size_t LexString(size_t pos) {
    const char q = src_[pos++];
    std::string s;
    while (true) {
      if (pos >= src_.size()) Fail(Where() + "unterminated string");
      const char c = src_[pos++];
      if (c == q) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        s.push_back(c);
        continue;
      }
      if (pos >= src_.size()) Fail(Where() + "unterminated string");
      const char e = src_[pos++];
      switch (e) {
        case 'n':
          s.push_back('\n');
          break;
        case 't':
          s.push_back('\t');
          break;
        case 'r':
          s.push_back('\r');
          break;
        case '0':
          s.push_back('\0');
          break;
        case '\\':
        case '\'':
        case '"':
          s.push_back(e);
          break;
        case '\n':
          break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos + n > src_.size()) Fail(Where() + "bad escape in string");
          const std::string hex(src_.substr(pos, n));
          char* end = nullptr;
          const unsigned long cp = std::strtoul(hex.c_str(), &end, 16);
          if (end != hex.c_str() + n || cp > 0x10FFFF) Fail(Where() + "bad escape in string");
          AppendUtf8(static_cast<uint32_t>(cp), &s);
          pos += n;
          break;
        }
        default:  // unknown escapes stay as they are, as in Python
          s.push_back('\\');
          s.push_back(e);
      }
    }
    out_.push_back({Token::Kind::kString, std::move(s), 0, 0, line_});
    return pos;
  }

  std::string_view src_;
  LexOptions o_;
  std::vector<Token> out_;
  int line_ = 1;
};

}  // namespace

std::vector<Token> Lex(std::string_view source, const LexOptions& options) {
  if (!options.keep_trailing_newline && !source.empty() && source.back() == '\n') {
    source.remove_suffix(1);
    if (!source.empty() && source.back() == '\r') source.remove_suffix(1);
  }
  return Lexer(source, options).Run();
}

}  // namespace treepo::jinja
