// Files that are whole or absent: written to a temporary file in the same directory, flushed,
// fsynced, renamed over the target, and the directory fsynced. A reader never sees a
// half-written file, and a crash leaves the old file (or none) plus at most a temporary.
//
//   TREEPO_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(path));
//   TREEPO_RETURN_IF_ERROR(f.Append(text));
//   TREEPO_RETURN_IF_ERROR(f.Commit());
//
// A file that is not committed is removed by the destructor. A process killed before Commit
// leaves the temporary behind: the tree file a rollout streams to uses the suffix ".partial",
// so a killed rollout leaves "<path>.partial" holding every tree it finished.
//
// Thread-safety: none; one owner.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace treepo {

class AtomicFile {
 public:
  struct Options {
    // The temporary file's name: "<path><suffix>". Empty: "<path>.tmp.<pid>".
    std::string temp_suffix;
  };

  // Opens the temporary file (its directory must exist: see EnsureWritableDir). Fails when
  // `path` is a directory or the directory is not writable.
  static Result<AtomicFile> Create(const std::string& path, const Options& options);
  static Result<AtomicFile> Create(const std::string& path) { return Create(path, Options()); }

  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  // Writes all of `data` to the temporary file (no user-space buffering).
  Status Append(std::string_view data);
  // fsync of the temporary file: what was appended survives a crash (as the temporary).
  Status Sync();
  // Sync, close, rename over `path`, fsync the directory. After it the object is empty.
  Status Commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  int64_t bytes_written() const { return bytes_; }

 private:
  AtomicFile() = default;
  void Reset();

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  int64_t bytes_ = 0;
};

// Writes `contents` to `path` through an AtomicFile.
Status WriteFileAtomically(const std::string& path, std::string_view contents);

// fsync of a directory, so that a rename or a new entry in it survives a crash.
Status SyncDir(const std::string& dir);

}  // namespace treepo
