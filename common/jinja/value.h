// A Jinja value with Python's semantics as jinja2 gives them to templates: undefined, none,
// bool, int, float, str, list, dict (insertion-ordered, string keys), namespace and callable.
// Lists, dicts and namespaces are shared by reference, as in Python.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace treepo::jinja {

class Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;

// Arguments of a call: positional, then keyword (name, value) in call order.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The keyword `name`, else positional `index`, else nullptr.
  const Value* Get(size_t index, std::string_view name) const;
};
using Function = std::function<Value(const Args&)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kArray, kObject, kFunction };

  Value() = default;  // undefined
  static Value None();
  Value(bool b);     // NOLINT: implicit by design, like Python literals
  Value(int64_t i);  // NOLINT
  Value(int i) : Value(static_cast<int64_t>(i)) {}  // NOLINT
  Value(double d);                                  // NOLINT
  Value(std::string s);                             // NOLINT
  Value(const char* s) : Value(std::string(s)) {}   // NOLINT
  static Value MakeArray(Array items = {});
  static Value MakeObject(Object items = {}, bool is_namespace = false);
  static Value MakeFunction(Function fn);
  // JSON values; an ordered_json keeps its keys' order, as Python dicts do.
  static Value FromJson(const nlohmann::json& j);
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_function() const { return kind_ == Kind::kFunction; }
  bool is_namespace() const { return is_namespace_; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_number() const { return is_int() ? static_cast<double>(i_) : d_; }
  const std::string& as_string() const { return *s_; }
  Array& array() const { return *array_; }
  Object& object() const { return *object_; }
  const Function& function() const { return *fn_; }

  // The dict entry `key`, or nullptr.
  const Value* Find(std::string_view key) const;
  // Sets a dict (or namespace) entry, keeping insertion order.
  void Set(const std::string& key, Value v) const;

  // Python truthiness.
  bool Truthy() const;
  // Python str(): None, True, 1, 1.5, 'a' inside containers, ['a', 1], {'k': 'v'}.
  std::string Str() const;
  // Python repr() (strings quoted).
  std::string Repr() const;
  // Python ==.
  bool Equals(const Value& o) const;
  // Python json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=sort_keys) as Hugging
  // Face's tojson filter calls it; indent < 0 means None.
  std::string ToJson(int indent = -1, bool sort_keys = false) const;
  // A type name for error messages.
  std::string_view TypeName() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool is_namespace_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<Array> array_;
  std::shared_ptr<Object> object_;
  std::shared_ptr<const Function> fn_;
};

// Python's repr of a float ("1.0", "0.1", "1e+20").
std::string FloatRepr(double d);

}  // namespace treepo::jinja
