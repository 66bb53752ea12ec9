// A file that grows by whole lines (metrics.jsonl): opened O_APPEND, each line handed to one
// write(2) with its newline, so a reader, or a process killed mid-run, sees a line whole or
// not at all (a short write is finished by further writes; it happens only on a full disk).
//
// Thread-safety: none; one owner.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace treepo {

class LineAppender {
 public:
  LineAppender() = default;
  LineAppender(LineAppender&& other) noexcept;
  LineAppender& operator=(LineAppender&& other) noexcept;
  LineAppender(const LineAppender&) = delete;
  LineAppender& operator=(const LineAppender&) = delete;
  ~LineAppender();

  // Opens (creating when missing) `path` for appending; kInvalidArgument naming it when it
  // cannot be opened.
  static Result<LineAppender> Open(const std::string& path);

  // Appends `line` and a newline. `line` must not hold a newline (CHECKed).
  [[nodiscard]] Status Append(std::string_view line);

  bool is_open() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Opens `path`, appends one line, closes it.
[[nodiscard]] Status AppendLineToFile(const std::string& path, std::string_view line);

}  // namespace treepo
