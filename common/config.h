// Configuration: a TOML file plus `--set key=value` overrides, flattened to dotted keys
// ("sampler.width"). Components read their options struct's fields through the typed Get
// calls; keys nobody read are reported by CheckAllConsumed, so a misspelt key is an error
// ("unknown config key 'sampler.widht' (did you mean 'sampler.width'?)") rather than silence.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace treepo {

class Config {
 public:
  Config() = default;

  static Result<Config> LoadTomlFile(const std::string& path);
  static Result<Config> FromTomlString(std::string_view text, std::string_view origin = "config");

  // Applies "key=value" (the value is parsed when read, by the type asked for).
  Status Set(std::string_view assignment);
  void SetValue(const std::string& key, std::string value) { values_[key] = std::move(value); }

  bool Has(const std::string& key) const { return values_.count(key) > 0; }
  // Each Get leaves *out unchanged when the key is absent and returns an InvalidArgument
  // naming the key when the value does not parse as the type asked for.
  Status Get(const std::string& key, int* out) const;
  Status Get(const std::string& key, int64_t* out) const;
  Status Get(const std::string& key, uint64_t* out) const;
  Status Get(const std::string& key, double* out) const;
  Status Get(const std::string& key, float* out) const;
  Status Get(const std::string& key, bool* out) const;
  Status Get(const std::string& key, std::string* out) const;

  // Every key that was set but never read: InvalidArgument listing them, with suggestions.
  Status CheckAllConsumed() const;
  // "key = value" lines of every key, sorted: the effective config for logs and dashboards.
  std::string ToString() const;
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  const std::string* Find(const std::string& key) const;

  std::map<std::string, std::string> values_;
  mutable std::set<std::string> consumed_;  // every key asked for, present or not
};

}  // namespace treepo
