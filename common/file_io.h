// Reading input files and checking output paths, the one way every loader and writer does it.
//
// Input: a path that is a directory, missing or unreadable gives a Status that says which
// ("prompt file x: is a directory, expected a file") instead of an exception or an empty
// read. Output: a path is checked before the work that produces it starts (its directory is
// created when missing and proven writable), so a long run never ends with "cannot open".
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace treepo {

// OK when `path` names an existing regular file (or a symlink to one) that can be opened for
// reading. kNotFound when it does not exist, kInvalidArgument when it is a directory or
// another non-file, kFailedPrecondition when it cannot be read. `what` names it in the
// message ("tokenizer", "prompt file").
Status CheckReadableFile(const std::string& path, std::string_view what);

// The whole file, after CheckReadableFile. kDataLoss when reading fails midway.
Result<std::string> ReadFileToString(const std::string& path, std::string_view what);

// Creates `dir` (and its parents) when missing and proves it writable by creating and
// removing a file in it. kInvalidArgument when `dir` exists but is not a directory,
// kFailedPrecondition when it cannot be created or written.
Status EnsureWritableDir(const std::string& dir, std::string_view what);

// Checks that `path` can be written as a file: not a directory, and its directory is
// created when missing and writable (EnsureWritableDir). Does not create `path` itself.
Status CheckWritableFile(const std::string& path, std::string_view what);

}  // namespace treepo
