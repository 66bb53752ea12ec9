// The parsed form of a template: expressions and statements as plain trees.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/jinja/value.h"

namespace treepo::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kList,      // children
    kDict,      // children as key, value, key, value...
    kAttr,      // children[0].name
    kIndex,     // children[0][children[1]]
    kSlice,     // children[0][children[1]:children[2]:children[3]] (null parts allowed)
    kCall,      // children[0](children[1..], kw_names/kw_values)
    kFilter,    // name(children[0], children[1..], kw)
    kTest,      // children[0] is [not] name(children[1..])  (negate)
    kUnary,     // op children[0]: "not", "-", "+"
    kBinary,    // children[0] op children[1]: arithmetic, comparison, "in", "not in", "~"
    kAnd,       // children[0] and children[1]
    kOr,        // children[0] or children[1]
    kCondition  // children[0] if children[1] else children[2] (may be null)
  };
  Kind kind;
  std::string name;  // name, attribute, operator, filter or test
  Value value;       // literal
  bool negate = false;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  int line = 0;
};

struct Node;
using NodePtr = std::shared_ptr<const Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches (condition, body)..., else_body
    kFor,       // for targets in expr [if filter]: body, else_body
    kSet,       // set targets = expr; or set ns.attr = expr (attr non-empty)
    kSetBlock,  // set targets[0] %}body{% endset
    kMacro,     // macro name(params with defaults): body
    kBreak,
    kContinue,
    kPassThrough,  // {% generation %}body{% endgeneration %}: the body rendered as is
  };
  Kind kind;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  std::string attr;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters (default may be null)
  int line = 0;
};

}  // namespace treepo::jinja
