#include "common/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "common/utf8.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;

std::string Named(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path;
}

}  // namespace

Status CheckReadableFile(const std::string& path, std::string_view what) {
  if (path.empty()) return InvalidArgument(std::string(what) + ": no path given");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return NotFound(Named(what, path) + ": does not exist");
    return FailedPrecondition(Named(what, path) + ": " + std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    return InvalidArgument(Named(what, path) + ": is a directory, expected a file");
  }
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument(Named(what, path) + ": is not a regular file");
  }
  if (::access(path.c_str(), R_OK) != 0) {
    return FailedPrecondition(Named(what, path) + ": cannot be read: " + std::strerror(errno));
  }
  return OkStatus();
}

Result<std::string> ReadFileToString(const std::string& path, std::string_view what) {
  TREEPO_RETURN_IF_ERROR(CheckReadableFile(path, what));
  std::ifstream in(path, std::ios::binary);
  if (!in) return FailedPrecondition(Named(what, path) + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return DataLoss(Named(what, path) + ": read failed");
  return std::move(text).str();
}

Status EnsureWritableDir(const std::string& dir, std::string_view what) {
  if (dir.empty()) return InvalidArgument(std::string(what) + ": no directory given");
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (fs::exists(st) && !fs::is_directory(st)) {
    return InvalidArgument(Named(what, dir) + ": exists and is not a directory");
  }
  if (!fs::exists(st)) {
    fs::create_directories(dir, ec);
    if (ec) return FailedPrecondition(Named(what, dir) + ": cannot create: " + ec.message());
  }
  // access(W_OK) is wrong for root on read-only mounts; a real file is the only proof.
  const std::string probe =
      (fs::path(dir) / (".treepo_write_probe." + std::to_string(::getpid()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return FailedPrecondition(Named(what, dir) + ": not writable: " + std::strerror(errno));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return OkStatus();
}

Status CheckWritableFile(const std::string& path, std::string_view what) {
  if (path.empty()) return InvalidArgument(std::string(what) + ": no path given");
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return InvalidArgument(Named(what, path) + ": is a directory, expected a file path");
  }
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  return EnsureWritableDir(parent.string(), std::string(what) + " " + path + ": directory");
}

}  // namespace treepo
