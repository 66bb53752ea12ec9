// jinja2's built-in filters, tests and global functions, and the Python methods of str, list
// and dict that templates call, limited to what chat templates use (see docs/models.md).
// Each raises JinjaError on a wrong argument; an unknown name is an error naming it.
#pragma once

#include <string>

#include "common/jinja/value.h"

namespace treepo::jinja {

// Calls test `name` (e.g. "defined", "string", "equalto") on `v`.
bool ApplyTest(const std::string& name, const Value& v, const Args& args);

// Calls filter `name` (e.g. "trim", "tojson", "selectattr") on `v`.
Value ApplyFilter(const std::string& name, const Value& v, const Args& args);

// Calls method `name` of a str, list or dict (`s.startswith(...)`, `d.items()`); false when
// `obj` has no such method.
bool CallMethod(const Value& obj, const std::string& name, const Args& args, Value* out);

// `obj.name` as jinja2 resolves it (dict entries; undefined when missing). Raises on an
// undefined `obj`.
Value GetAttr(const Value& obj, const std::string& name);
// `obj[key]`: list/str index (negative from the end), dict key; undefined when missing.
Value GetItem(const Value& obj, const Value& key);
// `obj[start:stop:step]` with Python's rules (null parts are omitted ones).
Value Slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// Python's `item in container`.
bool Contains(const Value& container, const Value& item);
// The items a for loop visits (dict: its keys; str: its characters).
Array Iterate(const Value& v);

// The global functions every template sees: range, namespace, dict.
Value GlobalFunction(const std::string& name);

}  // namespace treepo::jinja
