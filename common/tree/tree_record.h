// A finished query tree as the scheduler writes it and learners and tools read it: the
// tree file format (one JSON object per line; docs/tree-format.md) and the in-memory record.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/status.h"

namespace treepo {

// Why a path ended (TREEPO_SPEC.md section 2). kNone for inner nodes.
enum class FinishReason { kNone, kFinished, kEos, kMaxTokens, kMaxDepth, kRepetition };
std::string_view FinishReasonName(FinishReason r);  // "finished", "eos", ... ; "" for kNone
Result<FinishReason> ParseFinishReason(std::string_view name);

struct TreeNodeRecord {
  uint64_t id = 0;
  std::optional<uint64_t> parent;  // nullopt for depth-1 nodes (children of the prompt)
  int depth = 0;                   // 1 for the first segment
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;                // one per token, under the sampling distribution
  std::string text;                           // decoded segment text
  FinishReason finish = FinishReason::kNone;  // set on the node that ended a path
  uint32_t worker = 0;
  uint64_t weight_version = 0;
};

struct TreeLeafRecord {
  uint64_t node = 0;  // last node of the leaf's path
  float reward = 0.0f;
  FinishReason finish = FinishReason::kNone;
  int response_tokens = 0;  // tokens on the path (after truncation to the cap)
};

struct TreeRecord {
  std::string query_id;
  std::string prompt;
  std::string answer;  // reference answer, "" when unknown
  std::vector<int32_t> prompt_tokens;
  std::vector<TreeNodeRecord> nodes;  // parents before children
  std::vector<TreeLeafRecord> leaves;

  // The node ids on the path root-to-`leaf_node` (depth-1 node first). Empty if unknown.
  std::vector<uint64_t> PathTo(uint64_t leaf_node) const;
  // Concatenated tokens (and log-probs) of the leaf's path, truncated to response_tokens.
  std::vector<int32_t> ResponseTokens(const TreeLeafRecord& leaf) const;
  std::vector<float> ResponseLogprobs(const TreeLeafRecord& leaf) const;
  // Ids agree: every parent exists and comes first, depths chain, leaves name nodes.
  Status Validate() const;
};

std::string TreeRecordToJson(const TreeRecord& tree);  // one line, no trailing newline
Result<TreeRecord> TreeRecordFromJson(std::string_view line);
// Reads a whole JSONL file; a bad line is an error naming its line number.
Result<std::vector<TreeRecord>> ReadTreeFile(const std::string& path);
// Writes the file whole or not at all (TreeFileWriter, committed at the end).
Status WriteTreeFile(const std::string& path, const std::vector<TreeRecord>& trees);

// A tree file written tree by tree as trees finish: each Append goes to "<path>.partial" at
// once (one write per line, no user-space buffer), and Commit fsyncs it and renames it to
// `path`. A process killed before Commit leaves "<path>.partial" holding every tree appended
// so far, each on a whole line except possibly the last; a writer destroyed without Commit
// removes it.
class TreeFileWriter {
 public:
  static Result<TreeFileWriter> Open(const std::string& path);

  Status Append(const TreeRecord& tree);
  Status Commit() { return file_.Commit(); }
  int64_t trees() const { return trees_; }
  const std::string& path() const { return file_.path(); }

 private:
  explicit TreeFileWriter(AtomicFile file) : file_(std::move(file)) {}

  AtomicFile file_;
  int64_t trees_ = 0;
};

}  // namespace treepo
