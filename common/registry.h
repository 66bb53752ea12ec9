// A registry of named factories for one extension point (advantage estimators, rewards, stop
// rules, branching and fallback policies): the built-ins are registered explicitly by the
// extension point's own code when its registry is first used, plug-ins add theirs at start
// (common/plugin/plugin_loader.h), and the config picks one by name.
//
// Thread-safety: every member may be called from any thread; a mutex guards the entries.
// Factories run outside the lock and must be thread-safe themselves.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace treepo {

template <typename Interface, typename... Args>
class Registry {
 public:
  using Factory = std::function<Result<std::unique_ptr<Interface>>(Args...)>;

  // `kind` names the extension point in messages ("advantage estimator").
  explicit Registry(std::string kind) : kind_(std::move(kind)) {}
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  const std::string& kind() const { return kind_; }

  // kInvalidArgument for an empty name or a null factory, kAlreadyExists for a taken name.
  Status Register(std::string name, Factory factory) {
    if (name.empty()) return InvalidArgument(kind_ + ": empty name");
    if (!factory) return InvalidArgument(kind_ + " '" + name + "': no factory");
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_) {
      if (e.first == name) return AlreadyExists(kind_ + " '" + name + "' is already registered");
    }
    entries_.emplace_back(std::move(name), std::move(factory));
    return OkStatus();
  }

  bool Contains(std::string_view name) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_) {
      if (e.first == name) return true;
    }
    return false;
  }

  // Names in registration order (the built-ins first, the default among them first).
  std::vector<std::string> Names() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.first);
    return out;
  }

  // "a, b, c": the names for messages.
  std::string JoinedNames() const {
    std::string out;
    for (const std::string& n : Names()) out += (out.empty() ? "" : ", ") + n;
    return out;
  }

  // The factory's result; kInvalidArgument listing the known names for an unknown one.
  Result<std::unique_ptr<Interface>> Make(std::string_view name, Args... args) const {
    Factory f;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& e : entries_) {
        if (e.first == name) f = e.second;
      }
    }
    if (!f) {
      return InvalidArgument("unknown " + kind_ + " '" + std::string(name) +
                             "' (known: " + JoinedNames() + ")");
    }
    return f(std::forward<Args>(args)...);
  }

 private:
  const std::string kind_;
  mutable std::mutex mu_;  // guards entries_
  std::vector<std::pair<std::string, Factory>> entries_;
};

}  // namespace treepo
