#include "common/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/jinja/error.h"

namespace treepo::jinja {
namespace {

// ---- UTF-8 code points (Python indexes strings by code point) ----

std::vector<std::string> Chars(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    n = std::min(n, s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

bool IsPySpace(const std::string& ch) {
  static const char* const kSpaces[] = {" ",
                                        "\t",
                                        "\n",
                                        "\r",
                                        "\v",
                                        "\f",
                                        "\x1c",
                                        "\x1d",
                                        "\x1e",
                                        "\x1f",
                                        "\xC2\x85",
                                        "\xC2\xA0",
                                        "\xE1\x9A\x80",
                                        "\xE2\x80\xA8",
                                        "\xE2\x80\xA9",
                                        "\xE2\x80\xAF",
                                        "\xE2\x81\x9F",
                                        "\xE3\x80\x80"};
  for (const char* s : kSpaces) {
    if (ch == s) return true;
  }
  // U+2000..U+200A
  return ch.size() == 3 && ch[0] == '\xE2' && ch[1] == '\x80' &&
         static_cast<unsigned char>(ch[2]) >= 0x80 && static_cast<unsigned char>(ch[2]) <= 0x8A;
}

// Python's str.strip/lstrip/rstrip with optional `chars`.
std::string Strip(const std::string& s, const Value* chars, bool left, bool right) {
  const std::vector<std::string> cs = Chars(s);
  std::vector<std::string> set;
  const bool whitespace = chars == nullptr || chars->is_none() || chars->is_undefined();
  if (!whitespace) {
    if (!chars->is_string()) Fail("strip: chars must be a string");
    set = Chars(chars->as_string());
  }
  const auto strip_it = [&](const std::string& c) {
    return whitespace ? IsPySpace(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = cs.size();
  if (left) {
    while (b < e && strip_it(cs[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(cs[e - 1])) --e;
  }
  std::string out;
  for (size_t i = b; i < e; ++i) out += cs[i];
  return out;
}

const std::string& Str(const Value& v, const char* what) {
  if (!v.is_string())
    Fail(std::string(what) + ": expected a string, got " + std::string(v.TypeName()));
  return v.as_string();
}

int64_t Int(const Value& v, const char* what) {
  if (v.is_int()) return v.as_int();
  if (v.is_bool()) return v.as_bool();
  Fail(std::string(what) + ": expected an integer, got " + std::string(v.TypeName()));
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string Capitalize(const std::string& s) {
  std::string out = Lower(s);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}
std::string Title(const std::string& s) {
  std::string out = s;
  bool prev_alpha = false;
  for (char& c : out) {
    const bool alpha = std::isalpha(static_cast<unsigned char>(c));
    if (alpha) {
      c = static_cast<char>(prev_alpha ? std::tolower(static_cast<unsigned char>(c))
                                       : std::toupper(static_cast<unsigned char>(c)));
    }
    prev_alpha = alpha;
  }
  return out;
}

std::string Replace(const std::string& s, const std::string& from, const std::string& to,
                    int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between characters
    const auto cs = Chars(s);
    int64_t n = 0;
    for (const auto& c : cs) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      out += c;
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (true) {
    const size_t k = s.find(from, pos);
    if (k == std::string::npos || (count >= 0 && n >= count)) break;
    out.append(s, pos, k - pos);
    out += to;
    pos = k + from.size();
    ++n;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

Value Split(const std::string& s, const Value* sep, int64_t maxsplit) {
  Array out;
  if (sep == nullptr || sep->is_none()) {
    const auto cs = Chars(s);
    size_t i = 0;
    int64_t n = 0;
    while (i < cs.size()) {
      while (i < cs.size() && IsPySpace(cs[i])) ++i;
      if (i >= cs.size()) break;
      std::string word;
      if (maxsplit >= 0 && n >= maxsplit) {
        size_t e = cs.size();
        while (e > i && IsPySpace(cs[e - 1])) --e;
        for (; i < e; ++i) word += cs[i];
        out.emplace_back(word);
        break;
      }
      while (i < cs.size() && !IsPySpace(cs[i])) word += cs[i++];
      out.emplace_back(word);
      ++n;
    }
    return Value::MakeArray(std::move(out));
  }
  const std::string& d = Str(*sep, "split");
  if (d.empty()) Fail("split: empty separator");
  size_t pos = 0;
  int64_t n = 0;
  while (true) {
    const size_t k = s.find(d, pos);
    if (k == std::string::npos || (maxsplit >= 0 && n >= maxsplit)) break;
    out.emplace_back(s.substr(pos, k - pos));
    pos = k + d.size();
    ++n;
  }
  out.emplace_back(s.substr(pos));
  return Value::MakeArray(std::move(out));
}

int64_t Length(const Value& v) {
  if (v.is_string()) return static_cast<int64_t>(Chars(v.as_string()).size());
  if (v.is_array()) return static_cast<int64_t>(v.array().size());
  if (v.is_object()) return static_cast<int64_t>(v.object().size());
  if (v.is_undefined()) return 0;
  Fail("object of type '" + std::string(v.TypeName()) + "' has no len()");
}

int Compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int();
    return a.as_number() < b.as_number() ? -1 : a.as_number() > b.as_number();
  }
  if (a.is_string() && b.is_string())
    return a.as_string().compare(b.as_string()) < 0 ? -1 : a.as_string() > b.as_string();
  Fail("'<' not supported between '" + std::string(a.TypeName()) + "' and '" +
       std::string(b.TypeName()) + "'");
}

// Resolves a dotted attribute path ("a.b") as jinja2's attribute filters do.
Value Attribute(const Value& v, const std::string& path) {
  Value cur = v;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string part =
        path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (cur.is_array() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      cur = GetItem(cur, Value(static_cast<int64_t>(std::stoll(part))));
    } else if (cur.is_undefined()) {
      return cur;
    } else {
      cur = GetAttr(cur, part);
    }
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

Args Rest(const Args& args, size_t from) {
  Args r;
  for (size_t i = from; i < args.positional.size(); ++i) r.positional.push_back(args.positional[i]);
  r.keyword = args.keyword;
  return r;
}

// select/reject/selectattr/rejectattr.
Value SelectImpl(const Value& v, const Args& args, bool by_attr, bool keep) {
  Array out;
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (args.positional.empty()) Fail("selectattr: an attribute is required");
    attr = Str(args.positional[0], "selectattr");
    next = 1;
  }
  std::string test;
  if (args.positional.size() > next) test = Str(args.positional[next], "select");
  const Args test_args = Rest(args, next + 1);
  for (const Value& item : Iterate(v)) {
    const Value x = by_attr ? Attribute(item, attr) : item;
    const bool ok = test.empty() ? x.Truthy() : ApplyTest(test, x, test_args);
    if (ok == keep) out.push_back(item);
  }
  return Value::MakeArray(std::move(out));
}

Value Sorted(const Value& v, bool reverse, const std::string& attribute) {
  Array items = Iterate(v);
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    const Value x = attribute.empty() ? a : Attribute(a, attribute);
    const Value y = attribute.empty() ? b : Attribute(b, attribute);
    return reverse ? Compare(y, x) < 0 : Compare(x, y) < 0;
  });
  return Value::MakeArray(std::move(items));
}

}  // namespace

Array Iterate(const Value& v) {
  if (v.is_array()) return v.array();
  if (v.is_object()) {
    Array keys;
    for (const auto& [k, x] : v.object()) keys.emplace_back(k);
    return keys;
  }
  if (v.is_string()) {
    Array out;
    for (auto& c : Chars(v.as_string())) out.emplace_back(std::move(c));
    return out;
  }
  if (v.is_undefined()) return {};
  Fail("'" + std::string(v.TypeName()) + "' object is not iterable");
}

Value GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) Fail("cannot read attribute '" + name + "' of an undefined value");
  if (obj.is_object()) {
    const Value* v = obj.Find(name);
    return v ? *v : Value();
  }
  return Value();
}

Value GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) Fail("cannot index an undefined value");
  if (obj.is_object()) {
    if (!key.is_string()) return Value();
    const Value* v = obj.Find(key.as_string());
    return v ? *v : Value();
  }
  if (obj.is_array() || obj.is_string()) {
    if (!key.is_int() && !key.is_bool()) {
      if (key.is_string()) return Value();  // attribute-like lookup on a list: undefined
      Fail("indices must be integers, not " + std::string(key.TypeName()));
    }
    const Array items = obj.is_array() ? Array() : Iterate(obj);
    const Array& a = obj.is_array() ? obj.array() : items;
    int64_t i = Int(key, "index");
    if (i < 0) i += static_cast<int64_t>(a.size());
    if (i < 0 || i >= static_cast<int64_t>(a.size())) return Value();
    return a[i];
  }
  return Value();
}

Value Slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (!obj.is_array() && !obj.is_string()) {
    Fail("cannot slice a " + std::string(obj.TypeName()));
  }
  const Array items = Iterate(obj);
  const int64_t n = static_cast<int64_t>(items.size());
  const auto given = [](const Value& v) { return !v.is_undefined() && !v.is_none(); };
  const int64_t st = given(step) ? Int(step, "slice") : 1;
  if (st == 0) Fail("slice step cannot be zero");
  const auto clamp = [&](const Value& v, int64_t dflt) {
    if (!given(v)) return dflt;
    int64_t i = Int(v, "slice");
    if (i < 0) i += n;
    if (st > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t b = clamp(start, st > 0 ? 0 : n - 1);
  const int64_t e = clamp(stop, st > 0 ? n : -1);
  Array out;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(items[i]);
  if (obj.is_array()) return Value::MakeArray(std::move(out));
  std::string s;
  for (const Value& c : out) s += c.as_string();
  return Value(std::move(s));
}

bool Contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    return item.is_string() && container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_array()) {
    for (const Value& v : container.array()) {
      if (v.Equals(item)) return true;
    }
    return false;
  }
  if (container.is_object()) return item.is_string() && container.Find(item.as_string());
  if (container.is_undefined()) return false;
  Fail("argument of type '" + std::string(container.TypeName()) + "' is not iterable");
}

bool ApplyTest(const std::string& name, const Value& v, const Args& args) {
  const Value* a = args.Get(0, "value");
  const auto arg = [&]() -> const Value& {
    if (a == nullptr) Fail("test '" + name + "' needs an argument");
    return *a;
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_object();
  if (name == "iterable") return v.is_array() || v.is_object() || v.is_string();
  if (name == "sequence") return v.is_array() || v.is_object() || v.is_string();
  if (name == "callable") return v.is_function();
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return v.Equals(arg());
  if (name == "ne" || name == "!=") return !v.Equals(arg());
  if (name == "lt" || name == "lessthan" || name == "<") return Compare(v, arg()) < 0;
  if (name == "le" || name == "<=") return Compare(v, arg()) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return Compare(v, arg()) > 0;
  if (name == "ge" || name == ">=") return Compare(v, arg()) >= 0;
  if (name == "in") return Contains(arg(), v);
  if (name == "odd") return Int(v, "odd") % 2 != 0;
  if (name == "even") return Int(v, "even") % 2 == 0;
  if (name == "divisibleby") {
    const int64_t d = Int(arg(), "divisibleby");
    return d != 0 && Int(v, "divisibleby") % d == 0;
  }
  if (name == "lower") return v.is_string() && Lower(v.as_string()) == v.as_string();
  if (name == "upper") return v.is_string() && Upper(v.as_string()) == v.as_string();
  Fail("no test named '" + name + "'");
}

Value ApplyFilter(const std::string& name, const Value& v, const Args& args) {
  const Value* a0 = args.positional.empty() ? nullptr : &args.positional[0];
  if (name == "trim") return Value(Strip(Str(v, "trim"), args.Get(0, "chars"), true, true));
  if (name == "length" || name == "count") return Value(Length(v));
  if (name == "string") return Value(v.Str());
  if (name == "upper") return Value(Upper(Str(v, "upper")));
  if (name == "lower") return Value(Lower(Str(v, "lower")));
  if (name == "capitalize") return Value(Capitalize(Str(v, "capitalize")));
  if (name == "title") return Value(Title(Str(v, "title")));
  if (name == "safe" || (name == "list" && v.is_array())) return v;
  if (name == "list") return Value::MakeArray(Iterate(v));
  if (name == "first") {
    const Array items = Iterate(v);
    return items.empty() ? Value() : items.front();
  }
  if (name == "last") {
    const Array items = Iterate(v);
    return items.empty() ? Value() : items.back();
  }
  if (name == "join") {
    const Value* sep = args.Get(0, "d");
    const Value* attr = args.Get(1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : Iterate(v)) {
      if (!first && sep) out += sep->Str();
      first = false;
      out += (attr ? Attribute(item, attr->Str()) : item).Str();
    }
    return Value(std::move(out));
  }
  if (name == "replace") {
    if (args.positional.size() < 2) Fail("replace: old and new are required");
    const Value* count = args.Get(2, "count");
    return Value(Replace(v.Str(), args.positional[0].Str(), args.positional[1].Str(),
                         count && !count->is_none() ? Int(*count, "replace") : -1));
  }
  if (name == "default" || name == "d") {
    const Value* boolean = args.Get(1, "boolean");
    const bool use_default = v.is_undefined() || (boolean && boolean->Truthy() && !v.Truthy());
    if (!use_default) return v;
    const Value* d = args.Get(0, "default_value");
    return d ? *d : Value("");
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::MakeArray();
    if (!v.is_object()) Fail("items: expected a mapping, got " + std::string(v.TypeName()));
    Array out;
    for (const auto& [k, x] : v.object()) out.push_back(Value::MakeArray({Value(k), x}));
    return Value::MakeArray(std::move(out));
  }
  if (name == "tojson") {
    const Value* indent = args.Get(0, "indent");
    const Value* sort_keys = args.Get(1, "sort_keys");
    return Value(
        v.ToJson(indent && !indent->is_none() ? static_cast<int>(Int(*indent, "tojson")) : -1,
                 sort_keys && sort_keys->Truthy()));
  }
  if (name == "select") return SelectImpl(v, args, false, true);
  if (name == "reject") return SelectImpl(v, args, false, false);
  if (name == "selectattr") return SelectImpl(v, args, true, true);
  if (name == "rejectattr") return SelectImpl(v, args, true, false);
  if (name == "map") {
    Array out;
    if (const Value* attr = args.Get(99, "attribute")) {
      const Value* dflt = args.Get(99, "default");
      for (const Value& item : Iterate(v)) {
        Value x = Attribute(item, attr->Str());
        out.push_back(x.is_undefined() && dflt ? *dflt : x);
      }
    } else {
      if (a0 == nullptr) Fail("map: a filter name or attribute= is required");
      const std::string f = Str(*a0, "map");
      const Args rest = Rest(args, 1);
      for (const Value& item : Iterate(v)) out.push_back(ApplyFilter(f, item, rest));
    }
    return Value::MakeArray(std::move(out));
  }
  if (name == "int") {
    if (v.is_int()) return v;
    if (v.is_float()) return Value(static_cast<int64_t>(v.as_number()));
    if (v.is_bool()) return Value(static_cast<int64_t>(v.as_bool()));
    if (v.is_string()) {
      try {
        size_t used = 0;
        const int64_t i = std::stoll(v.as_string(), &used);
        if (used == v.as_string().size()) return Value(i);
      } catch (...) {
      }
    }
    const Value* d = args.Get(0, "default");
    return d ? *d : Value(static_cast<int64_t>(0));
  }
  if (name == "float") {
    if (v.is_number()) return Value(v.as_number());
    if (v.is_string()) {
      try {
        return Value(std::stod(v.as_string()));
      } catch (...) {
      }
    }
    const Value* d = args.Get(0, "default");
    return d ? *d : Value(0.0);
  }
  if (name == "abs") {
    if (v.is_int()) return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
    if (v.is_float()) return Value(std::fabs(v.as_number()));
    Fail("abs: expected a number");
  }
  if (name == "round") {
    const Value* p = args.Get(0, "precision");
    const double scale = std::pow(10.0, p ? static_cast<double>(Int(*p, "round")) : 0.0);
    if (!v.is_number()) Fail("round: expected a number");
    return Value(std::nearbyint(v.as_number() * scale) / scale);
  }
  if (name == "reverse") {
    if (v.is_string()) return Slice(v, Value(), Value(), Value(static_cast<int64_t>(-1)));
    Array items = Iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::MakeArray(std::move(items));
  }
  if (name == "sort") {
    const Value* rev = args.Get(0, "reverse");
    const Value* attr = args.Get(2, "attribute");
    return Sorted(v, rev && rev->Truthy(), attr ? attr->Str() : "");
  }
  if (name == "unique") {
    Array out;
    for (const Value& item : Iterate(v)) {
      if (!Contains(Value::MakeArray(out), item)) out.push_back(item);
    }
    return Value::MakeArray(std::move(out));
  }
  if (name == "sum") {
    Value total(static_cast<int64_t>(0));
    for (const Value& item : Iterate(v)) {
      if (!item.is_number()) Fail("sum: expected numbers");
      total = total.is_int() && item.is_int() ? Value(total.as_int() + item.as_int())
                                              : Value(total.as_number() + item.as_number());
    }
    return total;
  }
  if (name == "indent") {
    const Value* w = args.Get(0, "width");
    const Value* first = args.Get(1, "first");
    const std::string pad(w ? static_cast<size_t>(Int(*w, "indent")) : 4, ' ');
    const std::string s = Str(v, "indent");
    std::string out;
    bool at_line_start = first && first->Truthy();
    for (size_t i = 0; i < s.size(); ++i) {
      if (at_line_start && s[i] != '\n') out += pad;
      at_line_start = false;
      out.push_back(s[i]);
      if (s[i] == '\n') at_line_start = true;
    }
    return Value(std::move(out));
  }
  if (name == "wordcount")
    return Value(static_cast<int64_t>(Split(Str(v, "wordcount"), nullptr, -1).array().size()));
  Fail("no filter named '" + name + "'");
}

bool CallMethod(const Value& obj, const std::string& name, const Args& args, Value* out) {
  const Value* a0 = args.positional.empty() ? nullptr : &args.positional[0];
  if (obj.is_string()) {
    const std::string& s = obj.as_string();
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      *out = Value(Strip(s, a0, name != "rstrip", name != "lstrip"));
    } else if (name == "startswith" || name == "endswith") {
      if (a0 == nullptr) Fail(name + ": an argument is required");
      const Array options = a0->is_array() ? a0->array() : Array{*a0};
      bool r = false;
      for (const Value& o : options) {
        const std::string& p = Str(o, name.c_str());
        r = r || (name == "startswith"
                      ? s.compare(0, p.size(), p) == 0
                      : s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0);
      }
      *out = Value(r);
    } else if (name == "split") {
      const Value* maxsplit = args.Get(1, "maxsplit");
      *out = Split(s, args.Get(0, "sep"), maxsplit ? Int(*maxsplit, "split") : -1);
    } else if (name == "upper") {
      *out = Value(Upper(s));
    } else if (name == "lower") {
      *out = Value(Lower(s));
    } else if (name == "title") {
      *out = Value(Title(s));
    } else if (name == "capitalize") {
      *out = Value(Capitalize(s));
    } else if (name == "replace") {
      if (args.positional.size() < 2) Fail("replace: old and new are required");
      const Value* count = args.Get(2, "count");
      *out =
          Value(Replace(s, Str(args.positional[0], "replace"), Str(args.positional[1], "replace"),
                        count ? Int(*count, "replace") : -1));
    } else if (name == "find" || name == "count") {
      if (a0 == nullptr) Fail(name + ": an argument is required");
      const std::string& sub = Str(*a0, name.c_str());
      if (name == "find") {
        const size_t k = s.find(sub);
        *out = Value(k == std::string::npos ? static_cast<int64_t>(-1)
                                            : static_cast<int64_t>(Chars(s.substr(0, k)).size()));
      } else {
        int64_t n = 0;
        for (size_t k = s.find(sub); !sub.empty() && k != std::string::npos;
             k = s.find(sub, k + sub.size()))
          ++n;
        *out = Value(n);
      }
    } else if (name == "join") {
      if (a0 == nullptr) Fail("join: an argument is required");
      std::string r;
      bool first = true;
      for (const Value& item : Iterate(*a0)) {
        if (!first) r += s;
        first = false;
        r += Str(item, "join");
      }
      *out = Value(std::move(r));
    } else if (name == "isdigit" || name == "isspace" || name == "isalpha") {
      bool r = !s.empty();
      for (unsigned char c : s) {
        r = r && (name == "isdigit"   ? std::isdigit(c) != 0
                  : name == "isspace" ? std::isspace(c) != 0
                                      : std::isalpha(c) != 0);
      }
      *out = Value(r);
    } else {
      return false;
    }
    return true;
  }
  if (obj.is_object() && !obj.is_namespace()) {
    if (name == "items") {
      *out = ApplyFilter("items", obj, {});
    } else if (name == "keys") {
      *out = Value::MakeArray(Iterate(obj));
    } else if (name == "values") {
      Array vals;
      for (const auto& [k, x] : obj.object()) vals.push_back(x);
      *out = Value::MakeArray(std::move(vals));
    } else if (name == "get") {
      if (a0 == nullptr) Fail("get: a key is required");
      const Value got = GetItem(obj, *a0);
      const Value* d = args.Get(1, "default");
      *out = got.is_undefined() ? (d ? *d : Value::None()) : got;
    } else {
      return false;
    }
    return true;
  }
  if (obj.is_array()) {
    if (name == "index" && a0) {
      const Array& a = obj.array();
      for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].Equals(*a0)) {
          *out = Value(static_cast<int64_t>(i));
          return true;
        }
      }
      Fail("index: value is not in the list");
    }
    if (name == "count" && a0) {
      int64_t n = 0;
      for (const Value& x : obj.array()) n += x.Equals(*a0);
      *out = Value(n);
      return true;
    }
  }
  return false;
}

Value GlobalFunction(const std::string& name) {
  if (name == "range") {
    return Value::MakeFunction([](const Args& args) {
      int64_t start = 0, stop = 0, step = 1;
      const auto& p = args.positional;
      if (p.size() == 1) {
        stop = Int(p[0], "range");
      } else if (p.size() >= 2) {
        start = Int(p[0], "range");
        stop = Int(p[1], "range");
        if (p.size() >= 3) step = Int(p[2], "range");
      } else {
        Fail("range: expected 1 to 3 arguments");
      }
      if (step == 0) Fail("range: step cannot be zero");
      Array out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (out.size() > 1000000) Fail("range: too many items");
        out.emplace_back(i);
      }
      return Value::MakeArray(std::move(out));
    });
  }
  if (name == "namespace" || name == "dict") {
    const bool ns = name == "namespace";
    return Value::MakeFunction([ns](const Args& args) {
      Value o = Value::MakeObject({}, ns);
      for (const Value& p : args.positional) {  // namespace(dict) copies its entries
        if (p.is_object()) {
          for (const auto& [k, v] : p.object()) o.Set(k, v);
        }
      }
      for (const auto& [k, v] : args.keyword) o.Set(k, v);
      return o;
    });
  }
  return Value();
}

}  // namespace treepo::jinja
