#include "common/jinja/evaluator.h"

#include <cmath>
#include <unordered_map>

#include "common/jinja/builtins.h"
#include "common/jinja/error.h"

namespace treepo::jinja {
namespace {

constexpr int kMaxDepth = 256;           // nested macro calls
constexpr size_t kMaxOutput = 64 << 20;  // bytes of rendered text

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  explicit Renderer(const Value& context) {
    frames_.emplace_back();
    for (const auto& [k, v] : context.object()) frames_[0][k] = v;
  }

  // Namespaces are the only mutable values, so every reference cycle (`ns.self = ns`) runs
  // through one that was assigned to: emptying those frees the cycles.
  ~Renderer() {
    for (const Value& ns : mutated_namespaces_) ns.object().clear();
  }

  std::string Run(const Body& body) {
    std::string out;
    Exec(body, &out);
    return out;
  }

 private:
  using Frame = std::unordered_map<std::string, Value>;

  Value Lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      const auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    Value g = GlobalFunction(name);
    return g;
  }

  Flow Exec(const Body& body, std::string* out) {
    for (const NodePtr& n : body) {
      const Flow f = ExecNode(*n, out);
      if (f != Flow::kNormal) return f;
      if (out->size() > kMaxOutput)
        Fail("rendered text exceeds " + std::to_string(kMaxOutput) + " bytes");
    }
    return Flow::kNormal;
  }

  Flow ExecNode(const Node& n, std::string* out) {
    switch (n.kind) {
      case Node::Kind::kText:
        *out += n.text;
        return Flow::kNormal;
      case Node::Kind::kOutput:
        *out += Eval(*n.expr).Str();
        return Flow::kNormal;
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches) {
          if (Eval(*cond).Truthy()) return Exec(body, out);
        }
        return Exec(n.else_body, out);
      case Node::Kind::kFor:
        return ExecFor(n, out);
      case Node::Kind::kSet:
        ExecSet(n, Eval(*n.expr));
        return Flow::kNormal;
      case Node::Kind::kSetBlock: {
        std::string captured;
        Exec(n.body, &captured);
        frames_.back()[n.targets[0]] = Value(std::move(captured));
        return Flow::kNormal;
      }
      case Node::Kind::kMacro:
        DefineMacro(n);
        return Flow::kNormal;
      case Node::Kind::kBreak:
        if (loop_depth_ == 0) Fail(At(n) + "break outside a loop");
        return Flow::kBreak;
      case Node::Kind::kContinue:
        if (loop_depth_ == 0) Fail(At(n) + "continue outside a loop");
        return Flow::kContinue;
      case Node::Kind::kPassThrough:
        return Exec(n.body, out);
    }
    return Flow::kNormal;
  }

  static std::string At(const Node& n) { return "line " + std::to_string(n.line) + ": "; }

  void Assign(const std::vector<std::string>& targets, const Value& v, Frame* frame) {
    if (targets.size() == 1) {
      (*frame)[targets[0]] = v;
      return;
    }
    const Array items = Iterate(v);
    if (items.size() != targets.size()) {
      Fail("cannot unpack " + std::to_string(items.size()) + " values into " +
           std::to_string(targets.size()) + " names");
    }
    for (size_t i = 0; i < targets.size(); ++i) (*frame)[targets[i]] = items[i];
  }

  void ExecSet(const Node& n, const Value& v) {
    if (!n.attr.empty()) {
      const Value ns = Lookup(n.targets[0]);
      if (!ns.is_namespace())
        Fail(At(n) + "'" + n.targets[0] + "' is not a namespace; cannot set ." + n.attr);
      ns.Set(n.attr, v);
      mutated_namespaces_.push_back(ns);
      return;
    }
    Assign(n.targets, v, &frames_.back());
  }

  Flow ExecFor(const Node& n, std::string* out) {
    const Value seq = Eval(*n.expr);
    Array items;
    if (n.filter) {
      for (const Value& item : Iterate(seq)) {
        frames_.emplace_back();
        Assign(n.targets, item, &frames_.back());
        const bool keep = Eval(*n.filter).Truthy();
        frames_.pop_back();
        if (keep) items.push_back(item);
      }
    } else {
      items = Iterate(seq);
    }
    if (items.empty()) return Exec(n.else_body, out);
    const int64_t len = static_cast<int64_t>(items.size());
    ++loop_depth_;
    for (int64_t i = 0; i < len; ++i) {
      Frame frame;
      Assign(n.targets, items[i], &frame);
      Value loop = Value::MakeObject();
      loop.Set("index", Value(i + 1));
      loop.Set("index0", Value(i));
      loop.Set("revindex", Value(len - i));
      loop.Set("revindex0", Value(len - i - 1));
      loop.Set("first", Value(i == 0));
      loop.Set("last", Value(i == len - 1));
      loop.Set("length", Value(len));
      loop.Set("depth", Value(static_cast<int64_t>(1)));
      loop.Set("depth0", Value(static_cast<int64_t>(0)));
      loop.Set("previtem", i > 0 ? items[i - 1] : Value());
      loop.Set("nextitem", i + 1 < len ? items[i + 1] : Value());
      loop.Set("cycle", Value::MakeFunction([i](const Args& args) {
                 if (args.positional.empty()) Fail("loop.cycle: no items");
                 return args.positional[i % args.positional.size()];
               }));
      frame["loop"] = loop;
      frames_.push_back(std::move(frame));
      const Flow f = Exec(n.body, out);
      frames_.pop_back();
      if (f == Flow::kBreak) break;
    }
    --loop_depth_;
    return Flow::kNormal;
  }

  void DefineMacro(const Node& n) {
    const Node* node = &n;
    frames_.back()[n.text] = Value::MakeFunction([this, node](const Args& args) {
      if (++depth_ > kMaxDepth) Fail("macro calls nested too deeply");
      Frame frame;
      for (size_t i = 0; i < node->params.size(); ++i) {
        const auto& [pname, def] = node->params[i];
        const Value* given = args.Get(i, pname);
        frame[pname] = given ? *given : def ? Eval(*def) : Value();
      }
      // The macro sees the template's top-level variables and its arguments.
      std::vector<Frame> saved;
      saved.swap(frames_);
      frames_.push_back(saved[0]);
      frames_.push_back(std::move(frame));
      std::string out;
      const int saved_loops = loop_depth_;
      loop_depth_ = 0;
      try {
        Exec(node->body, &out);
      } catch (...) {
        frames_.swap(saved);
        throw;
      }
      loop_depth_ = saved_loops;
      frames_.swap(saved);
      --depth_;
      return Value(std::move(out));
    });
  }

  Args EvalArgs(const Expr& e, size_t first) {
    Args args;
    for (size_t i = first; i < e.children.size(); ++i)
      args.positional.push_back(Eval(*e.children[i]));
    for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, Eval(*v));
    return args;
  }

  static std::string AtE(const Expr& e) { return "line " + std::to_string(e.line) + ": "; }

  Value Eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName:
        return Lookup(e.name);
      case Expr::Kind::kList: {
        Array items;
        for (const ExprPtr& c : e.children) items.push_back(Eval(*c));
        return Value::MakeArray(std::move(items));
      }
      case Expr::Kind::kDict: {
        Value o = Value::MakeObject();
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          const Value k = Eval(*e.children[i]);
          if (!k.is_string()) Fail(AtE(e) + "dict keys must be strings");
          o.Set(k.as_string(), Eval(*e.children[i + 1]));
        }
        return o;
      }
      case Expr::Kind::kAttr: {
        const Value obj = Eval(*e.children[0]);
        if (obj.is_undefined()) Fail(AtE(e) + "'" + Describe(*e.children[0]) + "' is undefined");
        return GetAttr(obj, e.name);
      }
      case Expr::Kind::kIndex: {
        const Value obj = Eval(*e.children[0]);
        if (obj.is_undefined()) Fail(AtE(e) + "'" + Describe(*e.children[0]) + "' is undefined");
        return GetItem(obj, Eval(*e.children[1]));
      }
      case Expr::Kind::kSlice: {
        const auto part = [&](size_t i) { return e.children[i] ? Eval(*e.children[i]) : Value(); };
        return Slice(Eval(*e.children[0]), part(1), part(2), part(3));
      }
      case Expr::Kind::kCall:
        return EvalCall(e);
      case Expr::Kind::kFilter:
        return ApplyFilter(e.name, Eval(*e.children[0]), EvalArgs(e, 1));
      case Expr::Kind::kTest: {
        const Value v = Eval(*e.children[0]);
        const bool r = ApplyTest(e.name, v, EvalArgs(e, 1));
        return Value(e.negate ? !r : r);
      }
      case Expr::Kind::kUnary: {
        const Value v = Eval(*e.children[0]);
        if (e.name == "not") return Value(!v.Truthy());
        if (!v.is_number())
          Fail(AtE(e) + "bad operand type for unary " + e.name + ": '" + std::string(v.TypeName()) +
               "'");
        if (e.name == "+") return v;
        return v.is_int() ? Value(-v.as_int()) : Value(-v.as_number());
      }
      case Expr::Kind::kAnd: {
        const Value l = Eval(*e.children[0]);
        return l.Truthy() ? Eval(*e.children[1]) : l;
      }
      case Expr::Kind::kOr: {
        const Value l = Eval(*e.children[0]);
        return l.Truthy() ? l : Eval(*e.children[1]);
      }
      case Expr::Kind::kCondition:
        if (Eval(*e.children[1]).Truthy()) return Eval(*e.children[0]);
        return e.children[2] ? Eval(*e.children[2]) : Value();
      case Expr::Kind::kBinary:
        return EvalBinary(e);
    }
    return Value();
  }

  static std::string Describe(const Expr& e) {
    if (e.kind == Expr::Kind::kName) return e.name;
    if (e.kind == Expr::Kind::kAttr) return Describe(*e.children[0]) + "." + e.name;
    return "value";
  }

  Value EvalCall(const Expr& e) {
    const Expr& callee = *e.children[0];
    if (callee.kind == Expr::Kind::kAttr) {
      const Value obj = Eval(*callee.children[0]);
      if (obj.is_undefined()) Fail(AtE(e) + "'" + Describe(*callee.children[0]) + "' is undefined");
      Value out;
      if (CallMethod(obj, callee.name, EvalArgs(e, 1), &out)) return out;
      const Value fn = GetAttr(obj, callee.name);
      if (fn.is_function()) return fn.function()(EvalArgs(e, 1));
      Fail(AtE(e) + "'" + std::string(obj.TypeName()) + "' object has no method '" + callee.name +
           "'");
    }
    const Value fn = Eval(callee);
    if (!fn.is_function()) {
      Fail(AtE(e) + "'" + Describe(callee) +
           (fn.is_undefined() ? "' is undefined" : "' is not callable"));
    }
    return fn.function()(EvalArgs(e, 1));
  }

  Value EvalBinary(const Expr& e) {
    const std::string& op = e.name;
    const Value l = Eval(*e.children[0]);
    const Value r = Eval(*e.children[1]);
    const auto type_error = [&]() -> Value {
      Fail(AtE(e) + "unsupported operand types for " + op + ": '" + std::string(l.TypeName()) +
           "' and '" + std::string(r.TypeName()) + "'");
    };
    if (op == "~") return Value(l.Str() + r.Str());
    if (op == "==") return Value(l.Equals(r));
    if (op == "!=") return Value(!l.Equals(r));
    if (op == "in") return Value(Contains(r, l));
    if (op == "not in") return Value(!Contains(r, l));
    if (op == "<" || op == "<=" || op == ">" || op == ">=") {
      int c;
      if (l.is_number() && r.is_number()) {
        c = l.as_number() < r.as_number() ? -1 : l.as_number() > r.as_number();
        if (l.is_int() && r.is_int()) c = l.as_int() < r.as_int() ? -1 : l.as_int() > r.as_int();
      } else if (l.is_string() && r.is_string()) {
        c = l.as_string() < r.as_string() ? -1 : l.as_string() > r.as_string();
      } else {
        return type_error();
      }
      if (op == "<") return Value(c < 0);
      if (op == "<=") return Value(c <= 0);
      if (op == ">") return Value(c > 0);
      return Value(c >= 0);
    }
    if (op == "+") {
      if (l.is_string() && r.is_string()) return Value(l.as_string() + r.as_string());
      if (l.is_array() && r.is_array()) {
        Array a = l.array();
        a.insert(a.end(), r.array().begin(), r.array().end());
        return Value::MakeArray(std::move(a));
      }
    }
    if (op == "*") {
      const Value* seq = l.is_string() || l.is_array()   ? &l
                         : r.is_string() || r.is_array() ? &r
                                                         : nullptr;
      const Value* count = seq == &l ? &r : &l;
      if (seq && count->is_int()) {
        const int64_t n = std::max<int64_t>(0, count->as_int());
        if (seq->is_string()) {
          if (seq->as_string().size() * n > kMaxOutput)
            Fail(AtE(e) + "string repetition too large");
          std::string s;
          for (int64_t i = 0; i < n; ++i) s += seq->as_string();
          return Value(std::move(s));
        }
        Array a;
        for (int64_t i = 0; i < n; ++i) a.insert(a.end(), seq->array().begin(), seq->array().end());
        return Value::MakeArray(std::move(a));
      }
    }
    const auto num = [](const Value& v) { return v.is_number() || v.is_bool(); };
    if (!num(l) || !num(r)) return type_error();
    const bool ints = !l.is_float() && !r.is_float();
    const int64_t li = l.is_bool() ? l.as_bool() : l.as_int();
    const int64_t ri = r.is_bool() ? r.as_bool() : r.as_int();
    const double ld = l.is_bool() ? li : l.as_number();
    const double rd = r.is_bool() ? ri : r.as_number();
    if (op == "+") return ints ? Value(li + ri) : Value(ld + rd);
    if (op == "-") return ints ? Value(li - ri) : Value(ld - rd);
    if (op == "*") return ints ? Value(li * ri) : Value(ld * rd);
    if (op == "/") {
      if (rd == 0) Fail(AtE(e) + "division by zero");
      return Value(ld / rd);
    }
    if (op == "//" || op == "%") {
      if (rd == 0) Fail(AtE(e) + "integer division or modulo by zero");
      if (ints) {
        int64_t q = li / ri, m = li % ri;
        if (m != 0 && ((m < 0) != (ri < 0))) {
          --q;
          m += ri;
        }
        return op == "//" ? Value(q) : Value(m);
      }
      const double q = std::floor(ld / rd);
      return op == "//" ? Value(q) : Value(ld - q * rd);
    }
    if (op == "**") {
      if (ints && ri >= 0) {
        int64_t p = 1;
        for (int64_t i = 0; i < ri && i < 64; ++i) p *= li;
        return Value(p);
      }
      return Value(std::pow(ld, rd));
    }
    return type_error();
  }

  std::vector<Frame> frames_;
  std::vector<Value> mutated_namespaces_;
  int loop_depth_ = 0;
  int depth_ = 0;
};

}  // namespace

std::string Evaluate(const Body& body, const Value& context) { return Renderer(context).Run(body); }

}  // namespace treepo::jinja
