// Splits a Jinja template into tokens: text between tags (with whitespace control already
// applied: `{%-`/`-%}`, trim_blocks, lstrip_blocks, `+` to opt out; comments dropped) and the
// tokens of each `{{ ... }}` / `{% ... %}` tag. One trailing newline of the source is dropped
// unless keep_trailing_newline, as jinja2 does. Raises JinjaError on a malformed tag.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace treepo::jinja {

struct LexOptions {
  bool trim_blocks = false;            // drop the first newline after a block tag or comment
  bool lstrip_blocks = false;          // drop spaces/tabs before a block tag on its own line
  bool keep_trailing_newline = false;  // keep the source's final newline
};

struct Token {
  enum class Kind {
    kText,        // literal output (text)
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,        // identifier or keyword (text)
    kString,      // string literal, unescaped (text)
    kInt,         // integer literal (int_value)
    kFloat,       // float literal (float_value)
    kOperator,    // punctuation or operator (text)
    kEnd,         // end of the template
  };
  Kind kind;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

std::vector<Token> Lex(std::string_view source, const LexOptions& options);

}  // namespace treepo::jinja
