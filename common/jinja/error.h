// The error the interpreter raises while lexing, parsing or rendering. It is internal to
// common/jinja: Template::Parse and Template::Render catch it and return a Status, so no
// exception leaves the library.
#pragma once

#include <string>

namespace treepo::jinja {

struct JinjaError {
  std::string message;
};

[[noreturn]] inline void Fail(std::string message) { throw JinjaError{std::move(message)}; }

}  // namespace treepo::jinja
