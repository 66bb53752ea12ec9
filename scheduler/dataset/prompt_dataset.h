// Prompt sets: JSON-lines files (one object per line) read into records, and a cursor that
// hands out records in order or shuffled, epoch by epoch.
//
// A line is an object such as {"id": 7, "prompt": "...", "answer": "..."}. The prompt and
// answer field names are options, so the math evaluation sets serve as they are (see
// MathEvalOptions). Blank lines are skipped; any other bad line fails the whole load with its
// line number.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace treepo::scheduler {

// How the reference answer is taken from the answer field.
enum class AnswerMode {
  kPlain,      // the field as is (a number as JSON writes it, a list joined with ", ")
  kHashTail,   // gsm8k: the text after the last "####", trimmed (error if none)
  kLastBoxed,  // minerva: the content of the last \boxed{...} (error if none)
  kAuto,       // kHashTail if the field holds "####", else kPlain
};

Result<AnswerMode> ParseAnswerMode(std::string_view name);  // plain|gsm8k_hash|last_boxed|auto

struct PromptFileOptions {
  std::string prompt_field = "prompt";
  // Empty: records have no answer. A missing or null field on a line gives no answer.
  std::string answer_field = "answer";
  AnswerMode answer_mode = AnswerMode::kAuto;
  // A number or string; when absent the id is the 1-based line number.
  std::string id_field = "id";
};

// The options for one of the sets in shared/data/math-eval, by file stem (aime24, amc23,
// math500, minerva_math, olympiadbench, gsm8k).
Result<PromptFileOptions> MathEvalOptions(std::string_view set_name);

struct PromptRecord {
  std::string id;
  std::string prompt;
  std::optional<std::string> answer;
  // BOS + the prompt's tokens once tokenized (AdmitPrompts, prompt_admission.h); empty until
  // then, and a query driver tokenizes the prompt itself.
  std::vector<int32_t> prompt_tokens;
};

// Parses JSON-lines text; `source` names it in error messages ("file.jsonl:12: ...").
Result<std::vector<PromptRecord>> ParsePromptLines(std::string_view text,
                                                   const PromptFileOptions& options,
                                                   std::string_view source);
Result<std::vector<PromptRecord>> LoadPromptFile(const std::string& path,
                                                 const PromptFileOptions& options);

// The content of the last balanced \boxed{...} (or \fbox{...}) in `text`, if any.
std::optional<std::string> ExtractLastBoxed(std::string_view text);
// The trimmed text after the last "####", if any (commas in numbers removed: "1,000" -> "1000").
std::optional<std::string> ExtractHashAnswer(std::string_view text);

// Hands out indices 0..size-1, each exactly once per epoch, in order or in a shuffled order
// that is a pure function of (seed, epoch). The position can be saved and restored.
class DatasetCursor {
 public:
  struct Position {
    int64_t epoch = 0;
    int64_t offset = 0;  // indices already handed out in this epoch
  };

  // Precondition: size > 0.
  DatasetCursor(int64_t size, bool shuffle, uint64_t seed);

  // The next index; moves to the next epoch after the last one.
  int64_t Next();
  Position position() const { return {epoch_, offset_}; }
  // Fails (and changes nothing) if the offset is outside 0..size.
  Status Seek(Position position);
  int64_t size() const { return size_; }

 private:
  void BuildOrder();

  int64_t size_;
  bool shuffle_;
  uint64_t seed_;
  int64_t epoch_ = 0;
  int64_t offset_ = 0;
  std::vector<int64_t> order_;  // this epoch's order
};

}  // namespace treepo::scheduler
