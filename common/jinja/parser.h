// Builds the statement tree of a template from its tokens. Statements: if/elif/else, for
// (with unpacking, `if` filter, else), set (name, tuple, namespace attribute, block form),
// macro, break/continue (jinja2.ext.loopcontrols) and generation blocks; expressions with
// jinja2's precedence (conditional, or, and, not, comparisons and `in`, + -, ~, * / // %,
// **, unary -, filters `|` and tests `is`, attribute/index/slice/call). Raises JinjaError
// with the line of a malformed or unknown construct.
#pragma once

#include <vector>

#include "common/jinja/ast.h"
#include "common/jinja/lexer.h"

namespace treepo::jinja {

Body Parse(const std::vector<Token>& tokens);

}  // namespace treepo::jinja
