#include "common/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "common/jinja/error.h"

namespace treepo::jinja {

const Value* Args::Get(size_t index, std::string_view name) const {
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return index < positional.size() ? &positional[index] : nullptr;
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value::Value(bool b) : kind_(Kind::kBool), b_(b) {}
Value::Value(int64_t i) : kind_(Kind::kInt), i_(i) {}
Value::Value(double d) : kind_(Kind::kFloat), d_(d) {}
Value::Value(std::string s)
    : kind_(Kind::kString), s_(std::make_shared<const std::string>(std::move(s))) {}

Value Value::MakeArray(Array items) {
  Value v;
  v.kind_ = Kind::kArray;
  v.array_ = std::make_shared<Array>(std::move(items));
  return v;
}

Value Value::MakeObject(Object items, bool is_namespace) {
  Value v;
  v.kind_ = Kind::kObject;
  v.is_namespace_ = is_namespace;
  v.object_ = std::make_shared<Object>(std::move(items));
  return v;
}

Value Value::MakeFunction(Function fn) {
  Value v;
  v.kind_ = Kind::kFunction;
  v.fn_ = std::make_shared<const Function>(std::move(fn));
  return v;
}

namespace {

template <typename Json>
Value FromJsonImpl(const Json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::None();
    case nlohmann::json::value_t::boolean:
      return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_float:
      return Value(j.template get<double>());
    case nlohmann::json::value_t::string:
      return Value(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      Array a;
      for (const auto& e : j) a.push_back(FromJsonImpl(e));
      return Value::MakeArray(std::move(a));
    }
    case nlohmann::json::value_t::object: {
      Object o;
      for (const auto& [k, e] : j.items()) o.emplace_back(k, FromJsonImpl(e));
      return Value::MakeObject(std::move(o));
    }
    default:
      return Value::None();
  }
}

}  // namespace

Value Value::FromJson(const nlohmann::json& j) { return FromJsonImpl(j); }
Value Value::FromJson(const nlohmann::ordered_json& j) { return FromJsonImpl(j); }

const Value* Value::Find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : *object_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Value::Set(const std::string& key, Value v) const {
  for (auto& [k, old] : *object_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  object_->emplace_back(key, std::move(v));
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return d_ != 0;
    case Kind::kString:
      return !s_->empty();
    case Kind::kArray:
      return !array_->empty();
    case Kind::kObject:
      return is_namespace_ || !object_->empty();
    case Kind::kFunction:
      return true;
  }
  return false;
}

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);  // shortest round-trip digits
  std::string s(buf, end);
  // Python uses exponent notation when the exponent is < -4 or >= 16.
  const size_t e = s.find('e');
  std::string mantissa = e == std::string::npos ? s : s.substr(0, e);
  int exp10 = 0;
  if (e != std::string::npos) exp10 = std::stoi(s.substr(e + 1));
  // Normalise to digits and a decimal exponent.
  std::string digits;
  int point = -1;
  bool neg = false;
  for (char c : mantissa) {
    if (c == '-') {
      neg = true;
    } else if (c == '.') {
      point = static_cast<int>(digits.size());
    } else {
      digits.push_back(c);
    }
  }
  if (point < 0) point = static_cast<int>(digits.size());
  point += exp10;
  // Strip leading zeros.
  size_t lead = 0;
  while (lead + 1 < digits.size() && digits[lead] == '0') {
    ++lead;
    --point;
  }
  digits = digits.substr(lead);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  if (digits == "0") return neg ? "-0.0" : "0.0";
  const int sci = point - 1;
  std::string out = neg ? "-" : "";
  if (sci < -4 || sci >= 16) {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", sci < 0 ? '-' : '+', std::abs(sci));
    return out + eb;
  }
  if (point <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-point), '0');
    out += digits;
    return out;
  }
  const size_t whole = static_cast<size_t>(point);
  if (whole >= digits.size()) {
    out += digits;
    out.append(whole - digits.size(), '0');
    out += ".0";
    return out;
  }
  out.append(digits, 0, whole);
  out += '.';
  out.append(digits, whole, std::string::npos);
  return out;
}

namespace {

std::string PyQuote(const std::string& s) {
  // Python's repr of a str: single quotes unless the text has ' and no ".
  const bool use_double = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = use_double ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c == q) {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += q;
  return out;
}

void JsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void Json(const Value& v, int indent, bool sort_keys, int depth, std::string* out) {
  if (depth > 512) Fail("tojson: nested too deeply (a value that contains itself?)");
  const auto newline = [&](int d) {
    out->push_back('\n');
    out->append(static_cast<size_t>(indent) * d, ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  switch (v.kind()) {
    case Value::Kind::kNone:
      *out += "null";
      return;
    case Value::Kind::kBool:
      *out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::kInt:
      *out += std::to_string(v.as_int());
      return;
    case Value::Kind::kFloat: {
      const double d = v.as_number();
      *out += std::isnan(d)   ? "NaN"
              : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity")
                              : FloatRepr(d);
      return;
    }
    case Value::Kind::kString:
      JsonString(v.as_string(), out);
      return;
    case Value::Kind::kArray: {
      const Array& a = v.array();
      if (a.empty()) {
        *out += "[]";
        return;
      }
      out->push_back('[');
      for (size_t i = 0; i < a.size(); ++i) {
        if (i > 0) *out += item_sep;
        if (indent >= 0) newline(depth + 1);
        Json(a[i], indent, sort_keys, depth + 1, out);
      }
      if (indent >= 0) newline(depth);
      out->push_back(']');
      return;
    }
    case Value::Kind::kObject: {
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& e : v.object()) items.push_back(&e);
      if (sort_keys) {
        std::stable_sort(items.begin(), items.end(),
                         [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      if (items.empty()) {
        *out += "{}";
        return;
      }
      out->push_back('{');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) *out += item_sep;
        if (indent >= 0) newline(depth + 1);
        JsonString(items[i]->first, out);
        *out += ": ";
        Json(items[i]->second, indent, sort_keys, depth + 1, out);
      }
      if (indent >= 0) newline(depth);
      out->push_back('}');
      return;
    }
    case Value::Kind::kUndefined:
      Fail("tojson: the value is undefined");
    case Value::Kind::kFunction:
      Fail("tojson: a function is not JSON serializable");
  }
}

}  // namespace

std::string Value::Repr() const {
  if (is_string()) return PyQuote(*s_);
  return Str();
}

std::string Value::Str() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return b_ ? "True" : "False";
    case Kind::kInt:
      return std::to_string(i_);
    case Kind::kFloat:
      return FloatRepr(d_);
    case Kind::kString:
      return *s_;
    case Kind::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < array_->size(); ++i) {
        if (i > 0) out += ", ";
        out += (*array_)[i].Repr();
      }
      return out + "]";
    }
    case Kind::kObject: {
      if (is_namespace_) return "<Namespace>";
      std::string out = "{";
      for (size_t i = 0; i < object_->size(); ++i) {
        if (i > 0) out += ", ";
        out += PyQuote((*object_)[i].first) + ": " + (*object_)[i].second.Repr();
      }
      return out + "}";
    }
    case Kind::kFunction:
      return "<function>";
  }
  return "";
}

bool Value::Equals(const Value& o) const {
  if (is_number() && o.is_number()) {
    if (is_int() && o.is_int()) return i_ == o.i_;
    return as_number() == o.as_number();
  }
  if (is_bool() && o.is_number()) return Value(static_cast<int64_t>(b_)).Equals(o);
  if (is_number() && o.is_bool()) return o.Equals(*this);
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kBool:
      return b_ == o.b_;
    case Kind::kString:
      return *s_ == *o.s_;
    case Kind::kArray: {
      if (array_->size() != o.array_->size()) return false;
      for (size_t i = 0; i < array_->size(); ++i) {
        if (!(*array_)[i].Equals((*o.array_)[i])) return false;
      }
      return true;
    }
    case Kind::kObject: {
      if (object_ == o.object_) return true;
      if (object_->size() != o.object_->size()) return false;
      for (const auto& [k, v] : *object_) {
        const Value* ov = o.Find(k);
        if (ov == nullptr || !v.Equals(*ov)) return false;
      }
      return true;
    }
    case Kind::kFunction:
      return fn_ == o.fn_;
    default:
      return false;
  }
}

std::string Value::ToJson(int indent, bool sort_keys) const {
  std::string out;
  Json(*this, indent, sort_keys, 0, &out);
  return out;
}

std::string_view Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "undefined";
    case Kind::kNone:
      return "none";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kArray:
      return "list";
    case Kind::kObject:
      return is_namespace_ ? "namespace" : "dict";
    case Kind::kFunction:
      return "function";
  }
  return "?";
}

}  // namespace treepo::jinja
