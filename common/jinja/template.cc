#include "common/jinja/template.h"

#include "common/jinja/error.h"
#include "common/jinja/evaluator.h"
#include "common/jinja/lexer.h"
#include "common/jinja/parser.h"

namespace treepo::jinja {

Result<Template> Template::Parse(std::string_view source, const TemplateOptions& options) {
  LexOptions lex;
  lex.trim_blocks = options.trim_blocks;
  lex.lstrip_blocks = options.lstrip_blocks;
  lex.keep_trailing_newline = options.keep_trailing_newline;
  try {
    Template t;
    t.body_ = jinja::Parse(Lex(source, lex));
    return t;
  } catch (const JinjaError& e) {
    return InvalidArgument("template: " + e.message);
  }
}

Result<std::string> Template::Render(const Value& context) const {
  if (!context.is_object()) return InvalidArgument("template context must be a dict");
  try {
    return Evaluate(body_, context);
  } catch (const JinjaError& e) {
    return InvalidArgument("template: " + e.message);
  }
}

}  // namespace treepo::jinja
