// Renders a parsed template against a context: variable lookup through scopes (a for loop's
// body and a macro call are scopes; `if` is not, as in jinja2), `loop.*`, namespaces,
// macros, break/continue. Raises JinjaError; Template::Render turns it into a Status.
#pragma once

#include <string>

#include "common/jinja/ast.h"
#include "common/jinja/value.h"

namespace treepo::jinja {

// `context` is a dict of the template's variables (functions included).
std::string Evaluate(const Body& body, const Value& context);

}  // namespace treepo::jinja
