#include "common/collective/nccl_id_store.h"

#include <chrono>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <thread>

#include "common/atomic_file.h"
#include "common/file_io.h"

namespace treepo::collective {
namespace {

constexpr std::string_view kMagic = "treepo-nccl-id 1 ";
constexpr char kHex[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The id from the file's text ("treepo-nccl-id 1 <hex>\n"), or why not.
Result<std::vector<uint8_t>> ParseId(const std::string& path, const std::string& text,
                                     size_t id_bytes) {
  std::string_view s(text);
  if (!s.starts_with(kMagic)) {
    return DataLoss("NCCL id file " + path + " does not start with '" + std::string(kMagic) + "'");
  }
  s.remove_prefix(kMagic.size());
  if (s.ends_with('\n')) s.remove_suffix(1);
  if (s.size() != 2 * id_bytes) {
    return DataLoss("NCCL id file " + path + " holds " + std::to_string(s.size() / 2) +
                    " bytes, expected " + std::to_string(id_bytes));
  }
  std::vector<uint8_t> id(id_bytes);
  for (size_t i = 0; i < id_bytes; ++i) {
    const int hi = HexValue(s[2 * i]), lo = HexValue(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return DataLoss("NCCL id file " + path + " holds a non-hex digit");
    id[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return id;
}

}  // namespace

Result<std::string> NcclIdPath(const std::string& store_dir, const std::string& run_id) {
  const std::string key = run_id.empty() ? "treepo" : run_id;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok || key == "." || key == "..") {
      return InvalidArgument("collective run_id '" + run_id +
                             "' may hold only letters, digits, '.', '_' and '-' (it names the "
                             "NCCL id file in store_dir)");
    }
  }
  return (std::filesystem::path(store_dir) / (key + ".nccl-id")).string();
}

Status PublishNcclId(const std::string& store_dir, const std::string& run_id,
                     std::span<const uint8_t> id) {
  TREEPO_ASSIGN_OR_RETURN(const std::string path, NcclIdPath(store_dir, run_id));
  TREEPO_RETURN_IF_ERROR(EnsureWritableDir(store_dir, "collective store_dir"));
  std::string text(kMagic);
  for (uint8_t b : id) {
    text.push_back(kHex[b >> 4]);
    text.push_back(kHex[b & 15]);
  }
  text.push_back('\n');
  TREEPO_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(path));
  TREEPO_RETURN_IF_ERROR(f.Append(text));
  return f.Commit();
}

Result<std::vector<uint8_t>> WaitNcclId(const std::string& store_dir, const std::string& run_id,
                                        size_t id_bytes, int timeout_ms) {
  TREEPO_ASSIGN_OR_RETURN(const std::string path, NcclIdPath(store_dir, run_id));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  // Polls the directory as Gloo's FileStore does: the id appears once, written atomically.
  auto pause = std::chrono::microseconds(200);
  while (true) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      TREEPO_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path, "NCCL id file"));
      return ParseId(path, text, id_bytes);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceeded("waited " + std::to_string(timeout_ms) + " ms for the NCCL id " +
                              path + " (rank 0 publishes it; is it running with the same " +
                              "store_dir and run_id?)");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(20));
  }
}

void RemoveNcclId(const std::string& store_dir, const std::string& run_id) {
  Result<std::string> path = NcclIdPath(store_dir, run_id);
  if (!path.ok()) return;
  std::error_code ec;
  std::filesystem::remove(*path, ec);
}

}  // namespace treepo::collective
