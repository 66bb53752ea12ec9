#include "protocols/messages.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>

#include "common/utf8.h"

namespace treepo::protocols {
namespace {

constexpr size_t kMaxNameBytes = 256;

// Each alternative's index + 1 is its wire MessageType.
static_assert(std::variant_size_v<Payload> == kMaxMessageType);
static_assert(std::is_same_v<std::variant_alternative_t<0, Payload>, RegisterWorker>);
static_assert(std::is_same_v<std::variant_alternative_t<kMaxMessageType - 1, Payload>, Deregister>);

Status Invalid(std::string_view what, const std::string& detail) {
  return InvalidArgument(std::string(what) + ": " + detail);
}

bool KnownErrorCode(StatusCode code) {
  return code != StatusCode::kOk && static_cast<int>(code) > 0 &&
         static_cast<int>(code) <= static_cast<int>(StatusCode::kInternal);
}

bool NonNegativeFinite(double v) { return std::isfinite(v) && v >= 0; }

Status CheckName(std::string_view what, const std::string& name) {
  if (name.empty()) return Invalid(what, "name is empty");
  if (name.size() > kMaxNameBytes) {
    return Invalid(what, "name longer than " + std::to_string(kMaxNameBytes) + " bytes");
  }
  if (!IsValidUtf8(name)) return Invalid(what, "name is not valid UTF-8");
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return Invalid(what, "name holds a control character");
  }
  return OkStatus();
}

Status CheckPayload(const RegisterWorker& m, const CodecOptions&) {
  TREEPO_RETURN_IF_ERROR(CheckName("RegisterWorker", m.worker_name));
  if (m.threads == 0) return Invalid("RegisterWorker", "threads is 0");
  if (m.page_capacity == 0) return Invalid("RegisterWorker", "page_capacity is 0");
  if (m.page_size == 0) return Invalid("RegisterWorker", "page_size is 0");
  if (m.peer_endpoint.size() > 1024 || !IsValidUtf8(m.peer_endpoint)) {
    return Invalid("RegisterWorker", "peer endpoint is not valid UTF-8 of <= 1024 bytes");
  }
  return OkStatus();
}

Status CheckPayload(const RegisterLearner& m, const CodecOptions&) {
  TREEPO_RETURN_IF_ERROR(CheckName("RegisterLearner", m.learner_name));
  if (m.world_size == 0) return Invalid("RegisterLearner", "world_size is 0");
  if (m.rank >= m.world_size) {
    return Invalid("RegisterLearner", "rank " + std::to_string(m.rank) + " >= world_size " +
                                          std::to_string(m.world_size));
  }
  return OkStatus();
}

Status CheckPayload(const RegisterAck& m, const CodecOptions&) {
  if (m.assigned_id == 0) return Invalid("RegisterAck", "assigned_id is 0");
  if (m.epoch == 0) return Invalid("RegisterAck", "epoch is 0");
  if (m.heartbeat_interval_ms == 0) return Invalid("RegisterAck", "heartbeat interval is 0");
  return OkStatus();
}

Status CheckPayload(const Heartbeat& m, const CodecOptions&) {
  if (m.worker_id.value() == 0) return Invalid("Heartbeat", "worker_id is 0");
  return OkStatus();
}

Status CheckTask(const SegmentTask& t) {
  const std::string at = "task " + std::to_string(t.task_id.value()) + ": ";
  if (t.task_id.value() == 0) return Invalid("SegmentTask", "task_id is 0");
  if (t.query_id.value() == 0) return Invalid("SegmentTask", at + "query_id is 0");
  if (t.parent_node_id.value() == 0 && t.prefix_tokens.empty()) {
    return Invalid("SegmentTask", at + "root segment without prefix tokens");
  }
  if (t.child_node_ids.empty()) return Invalid("SegmentTask", at + "no child node ids");
  if (t.child_seeds.size() != t.child_node_ids.size()) {
    return Invalid("SegmentTask", at + std::to_string(t.child_seeds.size()) + " seeds for " +
                                      std::to_string(t.child_node_ids.size()) + " children");
  }
  std::unordered_set<uint64_t> seen;
  for (NodeId c : t.child_node_ids) {
    if (c.value() == 0) return Invalid("SegmentTask", at + "child node id is 0");
    if (c == t.parent_node_id) return Invalid("SegmentTask", at + "child id equals parent id");
    if (!seen.insert(c.value()).second) {
      return Invalid("SegmentTask", at + "duplicate child node id " + std::to_string(c.value()));
    }
  }
  if (t.max_new_tokens == 0) return Invalid("SegmentTask", at + "max_new_tokens is 0");
  if (!NonNegativeFinite(t.temperature)) {
    return Invalid("SegmentTask", at + "temperature must be finite and >= 0");
  }
  if (!(t.top_p > 0.0f && t.top_p <= 1.0f)) {
    return Invalid("SegmentTask", at + "top_p must be in (0, 1]");
  }
  return OkStatus();
}

Status CheckPayload(const SegmentTaskBatch& m, const CodecOptions&) {
  if (m.tasks.empty()) return Invalid("SegmentTaskBatch", "no tasks");
  for (const SegmentTask& t : m.tasks) TREEPO_RETURN_IF_ERROR(CheckTask(t));
  return OkStatus();
}

Status CheckResult(const SegmentResult& r) {
  const std::string at = "task " + std::to_string(r.task_id.value()) + ": ";
  if (r.task_id.value() == 0) return Invalid("SegmentResult", "task_id is 0");
  if (r.worker_id.value() == 0) return Invalid("SegmentResult", at + "worker_id is 0");
  if (r.children.empty()) return Invalid("SegmentResult", at + "no child results");
  for (const ChildResult& c : r.children) {
    if (c.node_id.value() == 0) return Invalid("SegmentResult", at + "child node id is 0");
    if (c.logprobs.size() != c.tokens.size()) {
      return Invalid("SegmentResult", at + "node " + std::to_string(c.node_id.value()) + " has " +
                                          std::to_string(c.logprobs.size()) + " logprobs for " +
                                          std::to_string(c.tokens.size()) + " tokens");
    }
    if (c.finish != SegmentFinish::kLength && c.finish != SegmentFinish::kEos) {
      return Invalid("SegmentResult", at + "unknown finish reason");
    }
  }
  if (!NonNegativeFinite(r.queue_ms) || !NonNegativeFinite(r.prefill_ms) ||
      !NonNegativeFinite(r.decode_ms)) {
    return Invalid("SegmentResult", at + "timings must be finite and >= 0");
  }
  return OkStatus();
}

Status CheckPayload(const SegmentResultBatch& m, const CodecOptions&) {
  if (m.results.empty()) return Invalid("SegmentResultBatch", "no results");
  for (const SegmentResult& r : m.results) TREEPO_RETURN_IF_ERROR(CheckResult(r));
  return OkStatus();
}

Status CheckPayload(const TaskRejected& m, const CodecOptions&) {
  if (m.task_id.value() == 0) return Invalid("TaskRejected", "task_id is 0");
  if (!KnownErrorCode(m.code)) return Invalid("TaskRejected", "status code is not an error");
  return OkStatus();
}

Status CheckPayload(const ReleaseNodes& m, const CodecOptions&) {
  for (NodeId n : m.node_ids) {
    if (n.value() == 0) return Invalid("ReleaseNodes", "node id is 0");
  }
  return OkStatus();
}

Status CheckPayload(const WeightVersionNotice& m, const CodecOptions& o) {
  if (m.n_chunks == 0) return Invalid("WeightVersionNotice", "n_chunks is 0");
  return OkStatus();
}

Status CheckPayload(const WeightChunk& m, const CodecOptions& o) {
  if (m.n_chunks == 0) return Invalid("WeightChunk", "n_chunks is 0");
  if (m.chunk_index >= m.n_chunks) {
    return Invalid("WeightChunk", "chunk index " + std::to_string(m.chunk_index) + " >= n_chunks " +
                                      std::to_string(m.n_chunks));
  }
  if (m.bytes.size() > o.max_weight_chunk_bytes) {
    return ResourceExhausted("WeightChunk: " + std::to_string(m.bytes.size()) +
                             " bytes exceeds the chunk limit of " +
                             std::to_string(o.max_weight_chunk_bytes));
  }
  if (m.offset > UINT64_MAX - m.bytes.size()) {
    return Invalid("WeightChunk", "offset + size overflows");
  }
  if (Fnv1a64(m.bytes) != m.chunk_checksum) {
    return DataLoss("WeightChunk: checksum mismatch on chunk " + std::to_string(m.chunk_index));
  }
  return OkStatus();
}

Status CheckPayload(const WeightAck&, const CodecOptions&) { return OkStatus(); }

Status CheckTree(const TreeRecord& tree) {
  const std::string at = "tree '" + tree.query_id.substr(0, 64) + "': ";
  std::unordered_set<uint64_t> ids;
  for (const TreeNodeRecord& n : tree.nodes) {
    if (n.id == 0) return Invalid("TreeBatch", at + "node id is 0");
    if (n.parent && !ids.contains(*n.parent)) {
      return Invalid("TreeBatch", at + "node " + std::to_string(n.id) +
                                      " comes before its parent or names a missing one");
    }
    if (!ids.insert(n.id).second) {
      return Invalid("TreeBatch", at + "duplicate node id " + std::to_string(n.id));
    }
    if (n.depth < 1) return Invalid("TreeBatch", at + "node depth < 1");
    if (n.logprobs.size() != n.tokens.size()) {
      return Invalid("TreeBatch", at + "node " + std::to_string(n.id) + " has " +
                                      std::to_string(n.logprobs.size()) + " logprobs for " +
                                      std::to_string(n.tokens.size()) + " tokens");
    }
  }
  for (const TreeLeafRecord& l : tree.leaves) {
    if (!ids.contains(l.node)) {
      return Invalid("TreeBatch", at + "leaf names missing node " + std::to_string(l.node));
    }
    if (l.response_tokens < 0) return Invalid("TreeBatch", at + "negative response tokens");
  }
  return OkStatus();
}

Status CheckPayload(const TreeBatch& m, const CodecOptions&) {
  for (const TreeRecord& t : m.trees) TREEPO_RETURN_IF_ERROR(CheckTree(t));
  return OkStatus();
}

Status CheckPayload(const TrainDone& m, const CodecOptions&) {
  for (const Metric& metric : m.metrics) {
    if (metric.name.empty()) return Invalid("TrainDone", "metric name is empty");
    if (!IsValidUtf8(metric.name)) return Invalid("TrainDone", "metric name is not valid UTF-8");
  }
  return OkStatus();
}

Status CheckPayload(const Shutdown&, const CodecOptions&) { return OkStatus(); }

Status CheckPayload(const ErrorReply& m, const CodecOptions&) {
  if (!KnownErrorCode(m.code)) return Invalid("ErrorReply", "status code is not an error");
  if (static_cast<uint16_t>(m.about) > kMaxMessageType) {
    return Invalid("ErrorReply", "about names an unknown message type");
  }
  return OkStatus();
}

bool SameNode(const TreeNodeRecord& a, const TreeNodeRecord& b) {
  return a.id == b.id && a.parent == b.parent && a.depth == b.depth && a.tokens == b.tokens &&
         a.logprobs == b.logprobs && a.text == b.text && a.finish == b.finish &&
         a.worker == b.worker && a.weight_version == b.weight_version;
}

bool SameLeaf(const TreeLeafRecord& a, const TreeLeafRecord& b) {
  return a.node == b.node && a.reward == b.reward && a.finish == b.finish &&
         a.response_tokens == b.response_tokens;
}

bool SameTree(const TreeRecord& a, const TreeRecord& b) {
  return a.query_id == b.query_id && a.prompt == b.prompt && a.answer == b.answer &&
         a.prompt_tokens == b.prompt_tokens &&
         std::equal(a.nodes.begin(), a.nodes.end(), b.nodes.begin(), b.nodes.end(), SameNode) &&
         std::equal(a.leaves.begin(), a.leaves.end(), b.leaves.begin(), b.leaves.end(), SameLeaf);
}

Status CheckPayload(const KvMigrate& m, const CodecOptions&) {
  if (m.transfer_id == 0) return Invalid("KvMigrate", "transfer_id is 0");
  if (m.node_ids.empty()) return Invalid("KvMigrate", "no node ids");
  for (NodeId n : m.node_ids) {
    if (n.value() == 0) return Invalid("KvMigrate", "node id 0");
  }
  if (m.send && m.dest_endpoint.empty()) return Invalid("KvMigrate", "no destination endpoint");
  if (!IsValidUtf8(m.dest_endpoint)) return Invalid("KvMigrate", "endpoint is not valid UTF-8");
  return OkStatus();
}

Status CheckPayload(const KvChunk& m, const CodecOptions& o) {
  if (m.transfer_id == 0) return Invalid("KvChunk", "transfer_id is 0");
  if (m.count == 0 || m.index >= m.count) {
    return Invalid("KvChunk",
                   "chunk index " + std::to_string(m.index) + " of " + std::to_string(m.count));
  }
  if (m.n_layers == 0 || m.page_size == 0 || m.kv_dim == 0) {
    return Invalid("KvChunk", "zero layers, page size or kv_dim");
  }
  if (static_cast<uint64_t>(m.page_begin) + m.page_count > m.total_pages) {
    return Invalid("KvChunk", "pages past the transfer's page count");
  }
  const uint64_t page_bytes = uint64_t{m.n_layers} * 2 * m.page_size * m.kv_dim * sizeof(float);
  if (page_bytes > o.max_weight_chunk_bytes || m.data.size() != page_bytes * m.page_count) {
    return Invalid("KvChunk", std::to_string(m.data.size()) + " bytes for " +
                                  std::to_string(m.page_count) + " pages");
  }
  if ((m.index == 0) == m.nodes.empty()) {
    return Invalid("KvChunk", "node list belongs in chunk 0 (and only there)");
  }
  for (const KvNode& n : m.nodes) {
    if (n.node_id.value() == 0) return Invalid("KvChunk", "node id 0");
    if (n.length == 0) return Invalid("KvChunk", "node of length 0");
    if (uint64_t{n.pages.size()} * m.page_size < n.length) {
      return Invalid("KvChunk", "node " + std::to_string(n.node_id.value()) +
                                    " has too few pages for its length");
    }
    for (uint32_t p : n.pages) {
      if (p >= m.total_pages) return Invalid("KvChunk", "page index past the page count");
    }
  }
  if (Fnv1a64(m.data) != m.checksum) {
    return DataLoss("KvChunk: checksum mismatch on chunk " + std::to_string(m.index) +
                    " of transfer " + std::to_string(m.transfer_id));
  }
  return OkStatus();
}

Status CheckPayload(const KvMigrated& m, const CodecOptions&) {
  if (m.transfer_id == 0) return Invalid("KvMigrated", "transfer_id is 0");
  if (!IsValidUtf8(m.message)) return Invalid("KvMigrated", "message is not valid UTF-8");
  return OkStatus();
}

Status CheckPayload(const Deregister& m, const CodecOptions&) {
  if (m.reason.size() > 1024) return Invalid("Deregister", "reason longer than 1024 bytes");
  if (!IsValidUtf8(m.reason)) return Invalid("Deregister", "reason is not valid UTF-8");
  return OkStatus();
}

}  // namespace

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kUnknown:
      return "Unknown";
    case MessageType::kRegisterWorker:
      return "RegisterWorker";
    case MessageType::kRegisterAck:
      return "RegisterAck";
    case MessageType::kRegisterLearner:
      return "RegisterLearner";
    case MessageType::kHeartbeat:
      return "Heartbeat";
    case MessageType::kSegmentTaskBatch:
      return "SegmentTaskBatch";
    case MessageType::kSegmentResultBatch:
      return "SegmentResultBatch";
    case MessageType::kTaskRejected:
      return "TaskRejected";
    case MessageType::kReleaseNodes:
      return "ReleaseNodes";
    case MessageType::kWeightVersionNotice:
      return "WeightVersionNotice";
    case MessageType::kWeightChunk:
      return "WeightChunk";
    case MessageType::kWeightAck:
      return "WeightAck";
    case MessageType::kTreeBatch:
      return "TreeBatch";
    case MessageType::kTrainDone:
      return "TrainDone";
    case MessageType::kShutdown:
      return "Shutdown";
    case MessageType::kErrorReply:
      return "ErrorReply";
    case MessageType::kKvMigrate:
      return "KvMigrate";
    case MessageType::kKvChunk:
      return "KvChunk";
    case MessageType::kKvMigrated:
      return "KvMigrated";
    case MessageType::kDeregister:
      return "Deregister";
  }
  return "Unknown";
}

bool TreeBatch::operator==(const TreeBatch& other) const {
  return step == other.step && prompts_drawn == other.prompts_drawn &&
         std::equal(trees.begin(), trees.end(), other.trees.begin(), other.trees.end(), SameTree);
}

Status Validate(const Message& message, const CodecOptions& options) {
  if (message.version != kProtocolVersion) {
    return FailedPrecondition("protocol version " + std::to_string(message.version) +
                              ", this build speaks " + std::to_string(kProtocolVersion));
  }
  return std::visit([&](const auto& payload) { return CheckPayload(payload, options); },
                    message.payload);
}

uint64_t Fnv1a64(std::span<const uint8_t> bytes, uint64_t seed) {
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  uint64_t h = seed;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= kPrime;
  }
  return h;
}

}  // namespace treepo::protocols
