#include "common/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <sstream>

#include "common/file_io.h"

namespace treepo {
namespace {

std::string ScalarToString(const toml::node& node) {
  if (const auto* s = node.as_string()) return s->get();
  if (const auto* i = node.as_integer()) return std::to_string(i->get());
  if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* f = node.as_floating_point()) {
    std::ostringstream os;
    os.precision(17);
    os << f->get();
    return os.str();
  }
  return "";
}

void Flatten(const toml::table& table, const std::string& prefix,
             std::map<std::string, std::string>* out) {
  for (const auto& [k, node] : table) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      Flatten(*sub, key, out);
    } else if (const auto* arr = node.as_array()) {
      std::ostringstream os;
      bool first = true;
      for (const auto& el : *arr) {
        if (!first) os << ",";
        first = false;
        os << ScalarToString(el);
      }
      (*out)[key] = os.str();
    } else {
      (*out)[key] = ScalarToString(node);
    }
  }
}

// Levenshtein distance, for "did you mean".
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

template <typename T>
Status ParseInt(const std::string& key, const std::string& v, T* out) {
  T x{};
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return InvalidArgument("config key '" + key + "': '" + v + "' is not an integer in range");
  }
  *out = x;
  return OkStatus();
}

}  // namespace

Result<Config> Config::LoadTomlFile(const std::string& path) {
  // Read through the common reader: a directory or a missing file is a clear error (toml++
  // would read a directory as an empty config).
  TREEPO_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path, "config file"));
  try {
    toml::table t = toml::parse(text, path);
    Config c;
    Flatten(t, "", &c.values_);
    return c;
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
       << e.description();
    return InvalidArgument(os.str());
  }
}

Result<Config> Config::FromTomlString(std::string_view text, std::string_view origin) {
  try {
    toml::table t = toml::parse(text, origin);
    Config c;
    Flatten(t, "", &c.values_);
    return c;
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << origin << ":" << e.source().begin.line << ": " << e.description();
    return InvalidArgument(os.str());
  }
}

Status Config::Set(std::string_view assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return InvalidArgument("--set expects key=value, got '" + std::string(assignment) + "'");
  }
  std::string key(assignment.substr(0, eq));
  std::string value(assignment.substr(eq + 1));
  key.erase(std::remove_if(key.begin(), key.end(), ::isspace), key.end());
  values_[key] = value;
  return OkStatus();
}

const std::string* Config::Find(const std::string& key) const {
  consumed_.insert(key);
  auto it = values_.find(key);
  if (it == values_.end()) return nullptr;
  return &it->second;
}

Status Config::Get(const std::string& key, int* out) const {
  const std::string* v = Find(key);
  return v ? ParseInt(key, *v, out) : OkStatus();
}
Status Config::Get(const std::string& key, int64_t* out) const {
  const std::string* v = Find(key);
  return v ? ParseInt(key, *v, out) : OkStatus();
}
Status Config::Get(const std::string& key, uint64_t* out) const {
  const std::string* v = Find(key);
  return v ? ParseInt(key, *v, out) : OkStatus();
}
Status Config::Get(const std::string& key, double* out) const {
  const std::string* v = Find(key);
  if (!v) return OkStatus();
  try {
    size_t pos = 0;
    double x = std::stod(*v, &pos);
    if (pos != v->size()) throw std::invalid_argument("trailing");
    *out = x;
    return OkStatus();
  } catch (const std::exception&) {
    return InvalidArgument("config key '" + key + "': '" + *v + "' is not a number");
  }
}
Status Config::Get(const std::string& key, float* out) const {
  double d = *out;
  TREEPO_RETURN_IF_ERROR(Get(key, &d));
  *out = static_cast<float>(d);
  return OkStatus();
}
Status Config::Get(const std::string& key, bool* out) const {
  const std::string* v = Find(key);
  if (!v) return OkStatus();
  if (*v == "true" || *v == "1" || *v == "yes" || *v == "on") {
    *out = true;
  } else if (*v == "false" || *v == "0" || *v == "no" || *v == "off") {
    *out = false;
  } else {
    return InvalidArgument("config key '" + key + "': '" + *v + "' is not a boolean");
  }
  return OkStatus();
}
Status Config::Get(const std::string& key, std::string* out) const {
  const std::string* v = Find(key);
  if (v) *out = *v;
  return OkStatus();
}

Status Config::CheckAllConsumed() const {
  std::vector<std::string> unknown;
  for (const auto& [k, v] : values_) {
    if (!consumed_.count(k)) unknown.push_back(k);
  }
  if (unknown.empty()) return OkStatus();
  std::ostringstream os;
  for (size_t i = 0; i < unknown.size(); ++i) {
    if (i) os << "; ";
    os << "unknown config key '" << unknown[i] << "'";
    std::string best;
    size_t best_d = 4;
    for (const auto& k : consumed_) {
      size_t d = EditDistance(unknown[i], k);
      if (d < best_d) best_d = d, best = k;
    }
    if (!best.empty()) os << " (did you mean '" << best << "'?)";
  }
  return InvalidArgument(os.str());
}

std::string Config::ToString() const {
  std::ostringstream os;
  for (const auto& [k, v] : values_) os << k << " = " << v << "\n";
  return os.str();
}

}  // namespace treepo
