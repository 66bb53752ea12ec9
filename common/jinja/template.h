// A small Jinja interpreter for chat templates: jinja2's syntax and semantics for what the
// chat templates of current models use (statements if/for/set/macro, break/continue,
// filters, tests, loop.*, namespace(), string and dict methods, slicing, whitespace control
// with trim_blocks/lstrip_blocks). Not supported: template inheritance and includes, call
// blocks, recursive loops, autoescaping. Errors are Status values naming the line.
#pragma once

#include <string>
#include <string_view>

#include "common/jinja/ast.h"
#include "common/jinja/value.h"
#include "common/status.h"

namespace treepo::jinja {

struct TemplateOptions {
  bool trim_blocks = false;            // as jinja2.Environment(trim_blocks=...)
  bool lstrip_blocks = false;          // as jinja2.Environment(lstrip_blocks=...)
  bool keep_trailing_newline = false;  // as jinja2.Environment(keep_trailing_newline=...)
};

class Template {
 public:
  // kInvalidArgument with the line for a syntax error or an unknown tag.
  static Result<Template> Parse(std::string_view source, const TemplateOptions& options = {});

  // Renders with the variables of `context` (a dict Value; functions such as
  // raise_exception may be among them). kInvalidArgument for a runtime error (an undefined
  // value used, a wrong type, an unknown filter, raise_exception).
  Result<std::string> Render(const Value& context) const;

 private:
  Body body_;
};

}  // namespace treepo::jinja
