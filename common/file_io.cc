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

size_t FindInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlong forms
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;  // <= U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

}  // namespace treepo
