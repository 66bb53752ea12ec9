#include "common/jinja/parser.h"

#include <set>

#include "common/jinja/error.h"

namespace treepo::jinja {
namespace {

using K = Token::Kind;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& t) : t_(t) {}

  Body ParseTemplate() {
    std::string end;
    Body body = ParseBody({}, &end);
    if (Peek().kind != K::kEnd) Fail(Where() + "unexpected tag");
    return body;
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    const size_t i = std::min(pos_ + ahead, t_.size() - 1);
    return t_[i];
  }
  const Token& Next() {
    const Token& t = Peek();
    if (pos_ < t_.size() - 1) ++pos_;
    return t;
  }
  std::string Where() const { return "line " + std::to_string(Peek().line) + ": "; }
  bool IsOp(const char* op, size_t ahead = 0) const {
    return Peek(ahead).kind == K::kOperator && Peek(ahead).text == op;
  }
  bool IsName(const char* name, size_t ahead = 0) const {
    return Peek(ahead).kind == K::kName && Peek(ahead).text == name;
  }
  void ExpectOp(const char* op) {
    if (!IsOp(op)) Fail(Where() + "expected '" + op + "', got '" + Peek().text + "'");
    Next();
  }
  std::string ExpectName() {
    if (Peek().kind != K::kName) Fail(Where() + "expected a name, got '" + Peek().text + "'");
    return Next().text;
  }
  void ExpectBlockEnd() {
    if (Peek().kind != K::kBlockEnd) Fail(Where() + "expected '%}', got '" + Peek().text + "'");
    Next();
  }

  // Parses nodes until a block tag whose keyword is in `ends` (consumed up to the keyword,
  // which is stored in *end) or the end of the template.
  Body ParseBody(const std::set<std::string>& ends, std::string* end) {
    Body body;
    while (true) {
      const Token& t = Peek();
      if (t.kind == K::kEnd) {
        if (!ends.empty())
          Fail(Where() + "missing end of block (expected one of " + Join(ends) + ")");
        return body;
      }
      if (t.kind == K::kText) {
        auto n = std::make_shared<Node>();
        n->kind = Node::Kind::kText;
        n->text = Next().text;
        body.push_back(n);
      } else if (t.kind == K::kVarBegin) {
        Next();
        auto n = std::make_shared<Node>();
        n->kind = Node::Kind::kOutput;
        n->line = Peek().line;
        n->expr = ParseExpression();
        if (Peek().kind != K::kVarEnd) Fail(Where() + "expected '}}', got '" + Peek().text + "'");
        Next();
        body.push_back(n);
      } else if (t.kind == K::kBlockBegin) {
        const Token& kw = Peek(1);
        if (kw.kind == K::kName && ends.count(kw.text)) {
          Next();
          *end = Next().text;
          return body;
        }
        Next();
        body.push_back(ParseStatement());
      } else {
        Fail(Where() + "unexpected token '" + t.text + "'");
      }
    }
  }

  static std::string Join(const std::set<std::string>& s) {
    std::string out;
    for (const auto& e : s) out += (out.empty() ? "" : ", ") + e;
    return out;
  }

  NodePtr ParseStatement() {
    if (++block_depth_ > kMaxExprDepth) Fail(Where() + "blocks nested too deeply");
    struct Exit {
      int* d;
      ~Exit() { --*d; }
    } exit{&block_depth_};
    const int line = Peek().line;
    const std::string kw = ExpectName();
    auto n = std::make_shared<Node>();
    n->line = line;
    if (kw == "if") {
      n->kind = Node::Kind::kIf;
      ExprPtr cond = ParseExpression();
      ExpectBlockEnd();
      while (true) {
        std::string end;
        Body body = ParseBody({"elif", "else", "endif"}, &end);
        n->branches.emplace_back(cond, std::move(body));
        if (end == "elif") {
          cond = ParseExpression();
          ExpectBlockEnd();
          continue;
        }
        if (end == "else") {
          ExpectBlockEnd();
          std::string e2;
          n->else_body = ParseBody({"endif"}, &e2);
        }
        ExpectBlockEnd();
        break;
      }
    } else if (kw == "for") {
      n->kind = Node::Kind::kFor;
      n->targets.push_back(ExpectName());
      while (IsOp(",")) {
        Next();
        n->targets.push_back(ExpectName());
      }
      if (!IsName("in")) Fail(Where() + "expected 'in' in for");
      Next();
      n->expr = ParseOr(/*allow_cond=*/false);
      if (IsName("if")) {
        Next();
        n->filter = ParseOr(false);
      }
      if (IsName("recursive")) Fail(Where() + "recursive loops are not supported");
      ExpectBlockEnd();
      std::string end;
      n->body = ParseBody({"else", "endfor"}, &end);
      if (end == "else") {
        ExpectBlockEnd();
        n->else_body = ParseBody({"endfor"}, &end);
      }
      ExpectBlockEnd();
    } else if (kw == "set") {
      n->targets.push_back(ExpectName());
      if (IsOp(".")) {
        Next();
        n->attr = ExpectName();
      }
      while (IsOp(",")) {
        Next();
        n->targets.push_back(ExpectName());
      }
      if (IsOp("=")) {
        Next();
        n->kind = Node::Kind::kSet;
        n->expr = ParseTuple();
        ExpectBlockEnd();
      } else {
        if (n->targets.size() != 1 || !n->attr.empty()) Fail(Where() + "malformed set block");
        n->kind = Node::Kind::kSetBlock;
        ExpectBlockEnd();
        std::string end;
        n->body = ParseBody({"endset"}, &end);
        ExpectBlockEnd();
      }
    } else if (kw == "macro") {
      n->kind = Node::Kind::kMacro;
      n->text = ExpectName();
      ExpectOp("(");
      while (!IsOp(")")) {
        std::string p = ExpectName();
        ExprPtr def;
        if (IsOp("=")) {
          Next();
          def = ParseExpression();
        }
        n->params.emplace_back(std::move(p), def);
        if (!IsOp(",")) break;
        Next();
      }
      ExpectOp(")");
      ExpectBlockEnd();
      std::string end;
      n->body = ParseBody({"endmacro"}, &end);
      ExpectBlockEnd();
    } else if (kw == "break" || kw == "continue") {
      n->kind = kw == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      ExpectBlockEnd();
    } else if (kw == "generation") {
      n->kind = Node::Kind::kPassThrough;
      ExpectBlockEnd();
      std::string end;
      n->body = ParseBody({"endgeneration"}, &end);
      ExpectBlockEnd();
    } else {
      Fail("line " + std::to_string(line) + ": unknown tag '" + kw + "'");
    }
    return n;
  }

  ExprPtr Make(Expr::Kind kind, std::vector<ExprPtr> children, std::string name = "") {
    auto e = std::make_shared<Expr>();
    e->kind = kind;
    e->children = std::move(children);
    e->name = std::move(name);
    e->line = Peek().line;
    return e;
  }

  // An expression, or a tuple "a, b" (as a list) where a statement allows one.
  ExprPtr ParseTuple() {
    ExprPtr first = ParseExpression();
    if (!IsOp(",")) return first;
    std::vector<ExprPtr> items{first};
    while (IsOp(",")) {
      Next();
      items.push_back(ParseExpression());
    }
    return Make(Expr::Kind::kList, std::move(items));
  }

  ExprPtr ParseExpression() { return ParseCondition(); }

  ExprPtr ParseCondition() {
    ExprPtr value = ParseOr(true);
    while (IsName("if")) {
      Next();
      ExprPtr cond = ParseOr(true);
      ExprPtr other;
      if (IsName("else")) {
        Next();
        other = ParseCondition();
      }
      value = Make(Expr::Kind::kCondition, {value, cond, other});
    }
    return value;
  }

  ExprPtr ParseOr(bool allow_cond) {
    ExprPtr left = ParseAnd();
    while (IsName("or")) {
      Next();
      left = Make(Expr::Kind::kOr, {left, ParseAnd()});
    }
    return left;
  }

  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (IsName("and")) {
      Next();
      left = Make(Expr::Kind::kAnd, {left, ParseNot()});
    }
    return left;
  }

  ExprPtr ParseNot() {
    if (IsName("not")) {
      Next();
      return Make(Expr::Kind::kUnary, {ParseNot()}, "not");
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    ExprPtr left = ParseMath1();
    while (true) {
      std::string op;
      if (Peek().kind == K::kOperator &&
          (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" ||
           Peek().text == "<=" || Peek().text == ">" || Peek().text == ">=")) {
        op = Next().text;
      } else if (IsName("in")) {
        Next();
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        Next();
        Next();
        op = "not in";
      } else {
        return left;
      }
      left = Make(Expr::Kind::kBinary, {left, ParseMath1()}, op);
    }
  }

  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      const std::string op = Next().text;
      left = Make(Expr::Kind::kBinary, {left, ParseConcat()}, op);
    }
    return left;
  }

  ExprPtr ParseConcat() {
    ExprPtr left = ParseMath2();
    while (IsOp("~")) {
      Next();
      left = Make(Expr::Kind::kBinary, {left, ParseMath2()}, "~");
    }
    return left;
  }

  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const std::string op = Next().text;
      left = Make(Expr::Kind::kBinary, {left, ParsePow()}, op);
    }
    return left;
  }

  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(true);
    while (IsOp("**")) {
      Next();
      left = Make(Expr::Kind::kBinary, {left, ParseUnary(true)}, "**");
    }
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      const std::string op = Next().text;
      node = Make(Expr::Kind::kUnary, {ParseUnary(false)}, op);
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(node);
    if (with_filter) node = ParseFilterExpr(node);
    return node;
  }

  ExprPtr ParsePrimary() {
    // Bounds the recursion on deeply nested input ("((((...", "[[[[...").
    struct DepthGuard {
      int* d;
      explicit DepthGuard(int* depth) : d(depth) { ++*d; }
      ~DepthGuard() { --*d; }
    } guard(&expr_depth_);
    if (expr_depth_ > kMaxExprDepth) Fail(Where() + "expression nested too deeply");
    const Token& t = Peek();
    auto lit = [&](Value v) {
      auto e = std::make_shared<Expr>();
      e->kind = Expr::Kind::kLiteral;
      e->value = std::move(v);
      e->line = t.line;
      return e;
    };
    if (t.kind == K::kString) {
      std::string s = Next().text;
      while (Peek().kind == K::kString) s += Next().text;  // adjacent literals concatenate
      return lit(Value(std::move(s)));
    }
    if (t.kind == K::kInt) return lit(Value(Next().int_value));
    if (t.kind == K::kFloat) return lit(Value(Next().float_value));
    if (t.kind == K::kName) {
      const std::string n = Next().text;
      if (n == "true" || n == "True") return lit(Value(true));
      if (n == "false" || n == "False") return lit(Value(false));
      if (n == "none" || n == "None") return lit(Value::None());
      return Make(Expr::Kind::kName, {}, n);
    }
    if (IsOp("(")) {
      Next();
      if (IsOp(")")) {
        Next();
        return Make(Expr::Kind::kList, {});
      }
      ExprPtr e = ParseExpression();
      if (IsOp(",")) {
        std::vector<ExprPtr> items{e};
        while (IsOp(",")) {
          Next();
          if (IsOp(")")) break;
          items.push_back(ParseExpression());
        }
        e = Make(Expr::Kind::kList, std::move(items));
      }
      ExpectOp(")");
      return e;
    }
    if (IsOp("[")) {
      Next();
      std::vector<ExprPtr> items;
      while (!IsOp("]")) {
        items.push_back(ParseExpression());
        if (!IsOp(",")) break;
        Next();
      }
      ExpectOp("]");
      return Make(Expr::Kind::kList, std::move(items));
    }
    if (IsOp("{")) {
      Next();
      std::vector<ExprPtr> items;
      while (!IsOp("}")) {
        items.push_back(ParseExpression());
        ExpectOp(":");
        items.push_back(ParseExpression());
        if (!IsOp(",")) break;
        Next();
      }
      ExpectOp("}");
      return Make(Expr::Kind::kDict, std::move(items));
    }
    Fail(Where() + "unexpected '" + t.text + "' in expression");
  }

  void ParseCallArgs(Expr* call) {
    ExpectOp("(");
    while (!IsOp(")")) {
      if (Peek().kind == K::kName && IsOp("=", 1)) {
        std::string k = Next().text;
        Next();
        call->kwargs.emplace_back(std::move(k), ParseExpression());
      } else {
        call->children.push_back(ParseExpression());
      }
      if (!IsOp(",")) break;
      Next();
    }
    ExpectOp(")");
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(".")) {
        Next();
        if (Peek().kind == K::kInt) {  // foo.0 as foo[0]
          auto idx = std::make_shared<Expr>();
          idx->kind = Expr::Kind::kLiteral;
          idx->value = Value(Next().int_value);
          node = Make(Expr::Kind::kIndex, {node, idx});
        } else {
          node = Make(Expr::Kind::kAttr, {node}, ExpectName());
        }
      } else if (IsOp("[")) {
        Next();
        ExprPtr parts[3];
        int n = 0;
        bool is_slice = false;
        while (true) {
          if (!IsOp(":") && !IsOp("]")) parts[n] = ParseExpression();
          if (IsOp(":")) {
            is_slice = true;
            Next();
            if (++n > 2) Fail(Where() + "malformed slice");
            continue;
          }
          break;
        }
        ExpectOp("]");
        if (is_slice) {
          node = Make(Expr::Kind::kSlice, {node, parts[0], parts[1], parts[2]});
        } else {
          if (!parts[0]) Fail(Where() + "empty subscript");
          node = Make(Expr::Kind::kIndex, {node, parts[0]});
        }
      } else if (IsOp("(")) {
        auto call = std::make_shared<Expr>();
        call->kind = Expr::Kind::kCall;
        call->line = Peek().line;
        call->children.push_back(node);
        ParseCallArgs(call.get());
        node = call;
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        Next();
        auto f = std::make_shared<Expr>();
        f->kind = Expr::Kind::kFilter;
        f->line = Peek().line;
        f->name = ExpectName();
        f->children.push_back(node);
        if (IsOp("(")) ParseCallArgs(f.get());
        node = f;
      } else if (IsName("is")) {
        Next();
        auto t = std::make_shared<Expr>();
        t->kind = Expr::Kind::kTest;
        t->line = Peek().line;
        if (IsName("not")) {
          Next();
          t->negate = true;
        }
        t->name = ExpectName();
        if (t->name == "none" || t->name == "true" || t->name == "false") {
          // keywords used as test names
        }
        t->children.push_back(node);
        if (IsOp("(")) {
          ParseCallArgs(t.get());
        } else if (Peek().kind == K::kString || Peek().kind == K::kInt ||
                   Peek().kind == K::kFloat ||
                   (Peek().kind == K::kName && !IsName("and") && !IsName("or") && !IsName("else") &&
                    !IsName("if") && !IsName("in") && !IsName("is") && !IsName("not"))) {
          t->children.push_back(ParsePostfix(ParsePrimary()));  // `is divisibleby 3`
        }
        node = t;
      } else if (IsOp("(")) {
        node = ParsePostfix(node);
      } else {
        return node;
      }
    }
  }

  static constexpr int kMaxExprDepth = 200;
  const std::vector<Token>& t_;
  size_t pos_ = 0;
  int expr_depth_ = 0;
  int block_depth_ = 0;
};

}  // namespace

Body Parse(const std::vector<Token>& tokens) { return Parser(tokens).ParseTemplate(); }

}  // namespace treepo::jinja
