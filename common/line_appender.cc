#include "common/line_appender.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/check.h"

namespace treepo {

LineAppender::LineAppender(LineAppender&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

LineAppender& LineAppender::operator=(LineAppender&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

LineAppender::~LineAppender() {
  if (fd_ >= 0) ::close(fd_);
}

Result<LineAppender> LineAppender::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return InvalidArgument("cannot open " + path + " for appending: " + std::strerror(errno));
  }
  LineAppender a;
  a.fd_ = fd;
  a.path_ = path;
  return a;
}

Status LineAppender::Append(std::string_view line) {
  TREEPO_CHECK(fd_ >= 0);
  TREEPO_CHECK(line.find('\n') == std::string_view::npos);
  std::string buf;
  buf.reserve(line.size() + 1);
  buf.append(line);
  buf.push_back('\n');
  size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = ::write(fd_, buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return DataLoss("cannot append to " + path_ + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

Status AppendLineToFile(const std::string& path, std::string_view line) {
  TREEPO_ASSIGN_OR_RETURN(LineAppender a, LineAppender::Open(path));
  return a.Append(line);
}

}  // namespace treepo
