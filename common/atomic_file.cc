#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

namespace treepo {
namespace {

namespace fs = std::filesystem;

std::string DirOf(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

Status Errno(std::string_view what, const std::string& path) {
  return FailedPrecondition(std::string(what) + " " + path + ": " + std::strerror(errno));
}

}  // namespace

Result<AtomicFile> AtomicFile::Create(const std::string& path, const Options& options) {
  if (path.empty()) return InvalidArgument("output file: no path given");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return InvalidArgument("output file " + path + ": is a directory, expected a file path");
  }
  AtomicFile f;
  f.path_ = path;
  f.temp_path_ = path + (options.temp_suffix.empty() ? ".tmp." + std::to_string(::getpid())
                                                     : options.temp_suffix);
  f.fd_ = ::open(f.temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd_ < 0) return Errno("cannot create", f.temp_path_);
  return f;
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept { *this = std::move(other); }

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    Reset();
    path_ = std::move(other.path_);
    temp_path_ = std::move(other.temp_path_);
    fd_ = std::exchange(other.fd_, -1);
    bytes_ = other.bytes_;
  }
  return *this;
}

AtomicFile::~AtomicFile() { Reset(); }

void AtomicFile::Reset() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  ::unlink(temp_path_.c_str());
}

Status AtomicFile::Append(std::string_view data) {
  if (fd_ < 0) return FailedPrecondition("output file " + path_ + " is closed");
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return DataLoss("writing " + temp_path_ + ": " + std::strerror(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
    bytes_ += n;
  }
  return OkStatus();
}

Status AtomicFile::Sync() {
  if (fd_ < 0) return FailedPrecondition("output file " + path_ + " is closed");
  if (::fsync(fd_) != 0) return DataLoss("fsync " + temp_path_ + ": " + std::strerror(errno));
  return OkStatus();
}

Status AtomicFile::Commit() {
  TREEPO_RETURN_IF_ERROR(Sync());
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) {
    ::unlink(temp_path_.c_str());
    return DataLoss("closing " + temp_path_ + ": " + std::strerror(errno));
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const Status st = Errno("cannot rename " + temp_path_ + " to", path_);
    ::unlink(temp_path_.c_str());
    return st;
  }
  return SyncDir(DirOf(path_));
}

Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  TREEPO_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(path));
  TREEPO_RETURN_IF_ERROR(f.Append(contents));
  return f.Commit();
}

Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open directory", dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems do not support fsync on directories; that is not a write failure.
  if (rc != 0 && err != EINVAL && err != EROFS) {
    return DataLoss("fsync directory " + dir + ": " + std::strerror(err));
  }
  return OkStatus();
}

}  // namespace treepo
