#include "protocols/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "common/log.h"

namespace treepo::protocols {
namespace {

namespace fs = std::filesystem;

// The key lines of a key file (comments and blanks skipped, whitespace trimmed).
Result<std::vector<std::string>> KeyLines(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return InvalidArgument(path + " is a directory, not a key file");
  std::ifstream in(path);
  if (!in) return NotFound("cannot read key file " + path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line) && lines.size() < 8) {
    const size_t a = line.find_first_not_of(" \t\r");
    if (a == std::string::npos || line[a] == '#') continue;
    const size_t b = line.find_last_not_of(" \t\r");
    lines.push_back(line.substr(a, b - a + 1));
  }
  return lines;
}

Status WriteFile(const fs::path& path, const std::string& text, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) return AlreadyExists(path.string() + " exists; not overwriting a key");
    return InvalidArgument("cannot create " + path.string() + ": " + std::strerror(errno));
  }
  Status st;
  if (fchmod(fd, mode) != 0 ||
      write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) || fsync(fd) != 0) {
    st = DataLoss("writing " + path.string() + " failed: " + std::strerror(errno));
  }
  close(fd);
  return st;
}

}  // namespace

Status CheckZ85Key(const std::string& key) {
  if (key.size() != 40) return InvalidArgument("a CURVE key is 40 Z85 characters");
  uint8_t raw[32];
  if (zmq_z85_decode(raw, key.c_str()) == nullptr) {
    return InvalidArgument("a CURVE key is 40 Z85 characters (not Z85)");
  }
  return OkStatus();
}

Status WriteKeyPairFiles(const std::string& dir, const std::string& name,
                         const CurveKeyPair& pair) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    return InvalidArgument("key name '" + EscapeBytes(name) + "' must be a plain file name");
  }
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return InvalidArgument("cannot create " + dir + ": " + ec.message());
    fs::permissions(dir, fs::perms::owner_all, ec);
  } else if (!fs::is_directory(dir, ec)) {
    return InvalidArgument(dir + " is not a directory");
  }
  const fs::path base = fs::path(dir) / name;
  const fs::path pub = base.string() + ".pub", key = base.string() + ".key";
  if (fs::exists(pub, ec) || fs::exists(key, ec)) {
    return AlreadyExists(base.string() + ".{pub,key} exist; not overwriting keys");
  }
  TREEPO_RETURN_IF_ERROR(WriteFile(key,
                                   "# CurveZMQ key pair of '" + name +
                                       "' (treepo keys): public key, then secret key. Keep "
                                       "it secret.\n" +
                                       pair.public_key + "\n" + pair.secret_key + "\n",
                                   0600));
  return WriteFile(
      pub, "# CurveZMQ public key of '" + name + "' (treepo keys)\n" + pair.public_key + "\n",
      0644);
}

Result<CurveKeyPair> ReadKeyPairFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return NotFound("cannot read key file " + path);
  if ((st.st_mode & 077) != 0) {
    return FailedPrecondition("key file " + path + " may be read by group or others; chmod 600 it");
  }
  TREEPO_ASSIGN_OR_RETURN(std::vector<std::string> lines, KeyLines(path));
  if (lines.size() != 2) {
    return InvalidArgument(path + ": a .key file holds two keys (public, secret); found " +
                           std::to_string(lines.size()) + " lines");
  }
  CurveKeyPair pair{lines[0], lines[1]};
  if (Status s = CheckZ85Key(pair.public_key); !s.ok()) return s.WithContext(path);
  if (Status s = CheckZ85Key(pair.secret_key); !s.ok()) return s.WithContext(path);
  char derived[41] = {};
  if (zmq_curve_public(derived, pair.secret_key.c_str()) == 0 && pair.public_key != derived) {
    return InvalidArgument(path + ": the public key does not belong to the secret key");
  }
  return pair;
}

Result<std::string> ReadPublicKeyFile(const std::string& path) {
  TREEPO_ASSIGN_OR_RETURN(std::vector<std::string> lines, KeyLines(path));
  if (lines.size() != 1) {
    return InvalidArgument(path + ": a .pub file holds one public key; found " +
                           std::to_string(lines.size()) + " lines");
  }
  if (Status s = CheckZ85Key(lines[0]); !s.ok()) return s.WithContext(path);
  return lines[0];
}

Result<std::vector<std::string>> ReadPublicKeys(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    TREEPO_ASSIGN_OR_RETURN(std::string key, ReadPublicKeyFile(path));
    return std::vector<std::string>{key};
  }
  std::vector<std::string> keys;
  for (const fs::directory_entry& e : fs::directory_iterator(path, ec)) {
    if (e.path().extension() != ".pub") continue;
    TREEPO_ASSIGN_OR_RETURN(std::string key, ReadPublicKeyFile(e.path().string()));
    keys.push_back(key);
  }
  if (ec) return InvalidArgument("cannot list " + path + ": " + ec.message());
  if (keys.empty()) return NotFound("no *.pub key files in " + path);
  return keys;
}

Status ClientKeyOptions::Validate() const {
  if (scheduler_key_file.empty() != key_file.empty()) {
    return InvalidArgument(
        "set both the scheduler's public key file and this process's key file, or neither");
  }
  return OkStatus();
}

Result<std::optional<CurveClientKeys>> ResolveClientKeys(const ClientKeyOptions& o,
                                                         const std::string& endpoint) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
  if (o.key_file.empty()) {
    if (IsLoopbackEndpoint(endpoint)) return std::optional<CurveClientKeys>();
    if (!o.insecure) {
      return InvalidArgument(
          "scheduler " + endpoint +
          " is not on loopback: give the scheduler's public key and this process's key "
          "(treepo keys; docs/security.md), or set insecure to send in the clear");
    }
    spdlog::warn(
        "INSECURE: talking to scheduler {} without CURVE keys: anyone on the network can read "
        "and forge this traffic (docs/security.md)",
        endpoint);
    return std::optional<CurveClientKeys>();
  }
  CurveClientKeys keys;
  TREEPO_ASSIGN_OR_RETURN(keys.server_public_key, ReadPublicKeyFile(o.scheduler_key_file));
  TREEPO_ASSIGN_OR_RETURN(keys.client, ReadKeyPairFile(o.key_file));
  return std::optional<CurveClientKeys>(std::move(keys));
}

}  // namespace treepo::protocols
