#include "common/tree/tree_record.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <unordered_map>

#include "common/file_io.h"
#include "common/json_file.h"
#include "common/json_number.h"

namespace treepo {
namespace {

using nlohmann::json;

constexpr std::string_view kReasonNames[] = {"",           "finished",  "eos",
                                             "max_tokens", "max_depth", "repetition"};

json FinishToJson(FinishReason r) {
  if (r == FinishReason::kNone) return nullptr;
  return std::string(FinishReasonName(r));
}

Result<FinishReason> FinishFromJson(const json& j, bool allow_null) {
  if (j.is_null()) {
    if (allow_null) return FinishReason::kNone;
    return InvalidArgument("finish must be a reason name, not null");
  }
  if (!j.is_string()) return InvalidArgument("finish must be a string or null");
  return ParseFinishReason(j.get<std::string>());
}

// Reads `obj[key]` as T; a missing key, a wrong type or an integer outside T's range is an
// error naming the key (nlohmann's get<int> would wrap 1e12 to -727379968).
template <typename T>
Status Get(const json& obj, const char* key, T* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return InvalidArgument(std::string("missing field \"") + key + "\"");
  const std::string what = std::string("field \"") + key + "\"";
  if constexpr (std::is_integral_v<T>) {
    TREEPO_ASSIGN_OR_RETURN(*out, JsonToInt<T>(*it, what));
  } else if constexpr (std::is_same_v<T, float>) {
    TREEPO_ASSIGN_OR_RETURN(*out, JsonToFiniteFloat(*it, what));
  } else if constexpr (std::is_same_v<T, std::vector<int32_t>>) {
    if (!it->is_array()) return InvalidArgument(what + ": expected an array");
    out->clear();
    out->reserve(it->size());
    for (size_t i = 0; i < it->size(); ++i) {
      TREEPO_ASSIGN_OR_RETURN(const int32_t v,
                              JsonToInt<int32_t>((*it)[i], what + "[" + std::to_string(i) + "]"));
      out->push_back(v);
    }
  } else {
    try {
      *out = it->get<T>();
    } catch (const json::exception& e) {
      return InvalidArgument(what + ": " + e.what());
    }
  }
  return OkStatus();
}

Result<TreeNodeRecord> NodeFromJson(const json& j) {
  if (!j.is_object()) return InvalidArgument("node is not an object");
  TreeNodeRecord n;
  TREEPO_RETURN_IF_ERROR(Get(j, "id", &n.id));
  auto parent = j.find("parent");
  if (parent == j.end()) return InvalidArgument("missing field \"parent\"");
  if (!parent->is_null()) {
    TREEPO_ASSIGN_OR_RETURN(n.parent, JsonToInt<uint64_t>(*parent, "field \"parent\""));
  }
  TREEPO_RETURN_IF_ERROR(Get(j, "depth", &n.depth));
  TREEPO_RETURN_IF_ERROR(Get(j, "tokens", &n.tokens));
  TREEPO_RETURN_IF_ERROR(Get(j, "logprobs", &n.logprobs));
  TREEPO_RETURN_IF_ERROR(Get(j, "text", &n.text));
  auto finish = j.find("finish");
  if (finish == j.end()) return InvalidArgument("missing field \"finish\"");
  TREEPO_ASSIGN_OR_RETURN(n.finish, FinishFromJson(*finish, /*allow_null=*/true));
  TREEPO_RETURN_IF_ERROR(Get(j, "worker", &n.worker));
  TREEPO_RETURN_IF_ERROR(Get(j, "weight_version", &n.weight_version));
  return n;
}

Result<TreeLeafRecord> LeafFromJson(const json& j) {
  if (!j.is_object()) return InvalidArgument("leaf is not an object");
  TreeLeafRecord l;
  TREEPO_RETURN_IF_ERROR(Get(j, "node", &l.node));
  TREEPO_RETURN_IF_ERROR(Get(j, "reward", &l.reward));
  auto finish = j.find("finish");
  if (finish == j.end()) return InvalidArgument("missing field \"finish\"");
  TREEPO_ASSIGN_OR_RETURN(l.finish, FinishFromJson(*finish, /*allow_null=*/false));
  TREEPO_RETURN_IF_ERROR(Get(j, "response_tokens", &l.response_tokens));
  return l;
}

}  // namespace

std::string_view FinishReasonName(FinishReason r) { return kReasonNames[static_cast<int>(r)]; }

Result<FinishReason> ParseFinishReason(std::string_view name) {
  for (int i = 1; i < static_cast<int>(std::size(kReasonNames)); ++i) {
    if (kReasonNames[i] == name) return static_cast<FinishReason>(i);
  }
  return InvalidArgument("unknown finish reason \"" + std::string(name) +
                         "\" (valid: finished, eos, max_tokens, max_depth, repetition)");
}

std::vector<uint64_t> TreeRecord::PathTo(uint64_t leaf_node) const {
  std::unordered_map<uint64_t, const TreeNodeRecord*> by_id;
  for (const TreeNodeRecord& n : nodes) by_id[n.id] = &n;
  std::vector<uint64_t> path;
  std::optional<uint64_t> cur = leaf_node;
  while (cur) {
    auto it = by_id.find(*cur);
    if (it == by_id.end() || path.size() > nodes.size()) return {};
    path.push_back(*cur);
    cur = it->second->parent;
  }
  return {path.rbegin(), path.rend()};
}

std::vector<int32_t> TreeRecord::ResponseTokens(const TreeLeafRecord& leaf) const {
  std::unordered_map<uint64_t, const TreeNodeRecord*> by_id;
  for (const TreeNodeRecord& n : nodes) by_id[n.id] = &n;
  std::vector<int32_t> out;
  for (uint64_t id : PathTo(leaf.node)) {
    const auto& t = by_id[id]->tokens;
    out.insert(out.end(), t.begin(), t.end());
  }
  if (out.size() > static_cast<size_t>(std::max(leaf.response_tokens, 0))) {
    out.resize(std::max(leaf.response_tokens, 0));
  }
  return out;
}

std::vector<float> TreeRecord::ResponseLogprobs(const TreeLeafRecord& leaf) const {
  std::unordered_map<uint64_t, const TreeNodeRecord*> by_id;
  for (const TreeNodeRecord& n : nodes) by_id[n.id] = &n;
  std::vector<float> out;
  for (uint64_t id : PathTo(leaf.node)) {
    const auto& t = by_id[id]->logprobs;
    out.insert(out.end(), t.begin(), t.end());
  }
  if (out.size() > static_cast<size_t>(std::max(leaf.response_tokens, 0))) {
    out.resize(std::max(leaf.response_tokens, 0));
  }
  return out;
}

Status TreeRecord::Validate() const {
  std::unordered_map<uint64_t, const TreeNodeRecord*> by_id;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const TreeNodeRecord& n = nodes[i];
    const std::string where = "node " + std::to_string(n.id) + ": ";
    if (n.id == 0) return InvalidArgument("node id 0 is reserved for the prompt");
    if (by_id.count(n.id)) return InvalidArgument(where + "duplicate id");
    if (n.logprobs.size() != n.tokens.size()) {
      return InvalidArgument(where + std::to_string(n.tokens.size()) + " tokens but " +
                             std::to_string(n.logprobs.size()) + " logprobs");
    }
    if (!n.parent) {
      if (n.depth != 1) return InvalidArgument(where + "no parent but depth != 1");
    } else {
      auto it = by_id.find(*n.parent);
      if (it == by_id.end()) {
        return InvalidArgument(where + "parent " + std::to_string(*n.parent) +
                               " missing or listed after its child");
      }
      if (it->second->depth + 1 != n.depth) {
        return InvalidArgument(where + "depth " + std::to_string(n.depth) + " but parent depth " +
                               std::to_string(it->second->depth));
      }
    }
    by_id[n.id] = &n;
  }
  for (size_t i = 0; i < leaves.size(); ++i) {
    const TreeLeafRecord& l = leaves[i];
    const std::string where = "leaf " + std::to_string(i) + ": ";
    auto it = by_id.find(l.node);
    if (it == by_id.end()) {
      return InvalidArgument(where + "names unknown node " + std::to_string(l.node));
    }
    if (l.finish == FinishReason::kNone) return InvalidArgument(where + "no finish reason");
    size_t path_tokens = 0;
    for (uint64_t id : PathTo(l.node)) path_tokens += by_id[id]->tokens.size();
    if (l.response_tokens < 0 || static_cast<size_t>(l.response_tokens) > path_tokens) {
      return InvalidArgument(where + "response_tokens " + std::to_string(l.response_tokens) +
                             " outside [0, " + std::to_string(path_tokens) + "]");
    }
  }
  return OkStatus();
}

std::string TreeRecordToJson(const TreeRecord& tree) {
  json j;
  j["query_id"] = tree.query_id;
  j["prompt"] = tree.prompt;
  j["answer"] = tree.answer;
  j["prompt_tokens"] = tree.prompt_tokens;
  json nodes = json::array();
  for (const TreeNodeRecord& n : tree.nodes) {
    json o;
    o["id"] = n.id;
    o["parent"] = n.parent ? json(*n.parent) : json(nullptr);
    o["depth"] = n.depth;
    o["tokens"] = n.tokens;
    o["logprobs"] = n.logprobs;
    o["text"] = n.text;
    o["finish"] = FinishToJson(n.finish);
    o["worker"] = n.worker;
    o["weight_version"] = n.weight_version;
    nodes.push_back(std::move(o));
  }
  j["nodes"] = std::move(nodes);
  json leaves = json::array();
  for (const TreeLeafRecord& l : tree.leaves) {
    leaves.push_back({{"node", l.node},
                      {"reward", l.reward},
                      {"finish", FinishToJson(l.finish)},
                      {"response_tokens", l.response_tokens}});
  }
  j["leaves"] = std::move(leaves);
  // Decoded segment text may cut a UTF-8 sequence; replace rather than throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<TreeRecord> TreeRecordFromJson(std::string_view line) {
  Result<json> parsed = ParseJsonText(line);
  if (!parsed.ok()) return InvalidArgument(parsed.status().message());
  const json& j = *parsed;
  if (!j.is_object()) return InvalidArgument("tree is not a JSON object");
  TreeRecord t;
  TREEPO_RETURN_IF_ERROR(Get(j, "query_id", &t.query_id));
  TREEPO_RETURN_IF_ERROR(Get(j, "prompt", &t.prompt));
  TREEPO_RETURN_IF_ERROR(Get(j, "answer", &t.answer));
  TREEPO_RETURN_IF_ERROR(Get(j, "prompt_tokens", &t.prompt_tokens));
  auto nodes = j.find("nodes");
  if (nodes == j.end() || !nodes->is_array()) return InvalidArgument("\"nodes\" is not an array");
  for (size_t i = 0; i < nodes->size(); ++i) {
    Result<TreeNodeRecord> n = NodeFromJson((*nodes)[i]);
    if (!n.ok()) return n.status().WithContext("nodes[" + std::to_string(i) + "]");
    t.nodes.push_back(std::move(*n));
  }
  auto leaves = j.find("leaves");
  if (leaves == j.end() || !leaves->is_array()) {
    return InvalidArgument("\"leaves\" is not an array");
  }
  for (size_t i = 0; i < leaves->size(); ++i) {
    Result<TreeLeafRecord> l = LeafFromJson((*leaves)[i]);
    if (!l.ok()) return l.status().WithContext("leaves[" + std::to_string(i) + "]");
    t.leaves.push_back(std::move(*l));
  }
  TREEPO_RETURN_IF_ERROR(t.Validate());
  return t;
}

Result<std::vector<TreeRecord>> ReadTreeFile(const std::string& path) {
  TREEPO_RETURN_IF_ERROR(CheckReadableFile(path, "tree file"));
  std::ifstream in(path);
  if (!in) return NotFound("cannot open tree file " + path);
  std::vector<TreeRecord> trees;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Result<TreeRecord> t = TreeRecordFromJson(line);
    if (!t.ok()) return t.status().WithContext(path + ":" + std::to_string(line_no));
    trees.push_back(std::move(*t));
  }
  return trees;
}

Status WriteTreeFile(const std::string& path, const std::vector<TreeRecord>& trees) {
  TREEPO_ASSIGN_OR_RETURN(TreeFileWriter w, TreeFileWriter::Open(path));
  for (const TreeRecord& t : trees) TREEPO_RETURN_IF_ERROR(w.Append(t));
  return w.Commit();
}

Result<TreeFileWriter> TreeFileWriter::Open(const std::string& path) {
  AtomicFile::Options o;
  o.temp_suffix = ".partial";
  TREEPO_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(path, o));
  return TreeFileWriter(std::move(f));
}

Status TreeFileWriter::Append(const TreeRecord& tree) {
  TREEPO_RETURN_IF_ERROR(file_.Append(TreeRecordToJson(tree) + "\n"));
  ++trees_;
  return OkStatus();
}

}  // namespace treepo
