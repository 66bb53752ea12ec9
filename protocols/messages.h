// The messages processes exchange, as plain copyable structs. protocols/codec.h turns them
// into frames (Cap'n Proto, protocols/treepo.capnp) and back; nothing here depends on capnp.
// docs/protocol.md describes each message and the rules Validate() enforces.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "common/tree/tree_record.h"

namespace treepo::protocols {

// Bumped only for an incompatible wire change; appended fields keep the version.
inline constexpr uint16_t kProtocolVersion = 1;

// Wire values are fixed (they are the capnp enumerants); append only.
enum class MessageType : uint16_t {
  kUnknown = 0,
  kRegisterWorker = 1,
  kRegisterAck = 2,
  kRegisterLearner = 3,
  kHeartbeat = 4,
  kSegmentTaskBatch = 5,
  kSegmentResultBatch = 6,
  kTaskRejected = 7,
  kReleaseNodes = 8,
  kWeightVersionNotice = 9,
  kWeightChunk = 10,
  kWeightAck = 11,
  kTreeBatch = 12,
  kTrainDone = 13,
  kShutdown = 14,
  kErrorReply = 15,
  kKvMigrate = 16,
  kKvChunk = 17,
  kKvMigrated = 18,
  kDeregister = 19,
};
inline constexpr uint16_t kMaxMessageType = 19;
std::string_view MessageTypeName(
    MessageType type);  // "SegmentTaskBatch"; "Unknown" if out of range

// worker -> scheduler, first message on a connection.
struct RegisterWorker {
  std::string worker_name;     // non-empty, <= 256 bytes
  uint32_t threads = 1;        // >= 1
  uint32_t page_capacity = 0;  // KV pages the worker can hold, >= 1
  uint32_t page_size = 0;      // tokens per page, >= 1
  uint64_t model_fingerprint = 0;
  // Names one registration attempt: a worker resends RegisterWorker until acknowledged, and
  // the scheduler answers every resend of the same attempt with the first one's ack instead of
  // registering the worker again (0: unnamed, every message is a new registration).
  uint64_t registration_id = 0;
  // Where other workers send this one KV pages (KvChunk); empty: it takes no migrations.
  std::string peer_endpoint;
  uint64_t page_bytes = 0;  // bytes of one KV page over all layers (0: not reported)
  // The weight version its engine runs (0: the model file's, before any WeightChunk), so the
  // scheduler gives it tasks of that version only and sends it the current weights otherwise.
  WeightVersion weight_version;
  bool operator==(const RegisterWorker&) const = default;
};

// learner -> scheduler, first message on a connection.
struct RegisterLearner {
  std::string learner_name;  // non-empty, <= 256 bytes
  uint32_t rank = 0;         // < world_size
  uint32_t world_size = 1;   // >= 1
  uint64_t model_fingerprint = 0;
  bool operator==(const RegisterLearner&) const = default;
};

// scheduler -> worker/learner: the id to use as Message::sender, and the epoch that fences
// this registration (messages carrying an older epoch are stale).
struct RegisterAck {
  uint32_t assigned_id = 0;            // WorkerId or LearnerId value, non-zero
  uint64_t epoch = 0;                  // non-zero
  uint32_t heartbeat_interval_ms = 0;  // non-zero
  WeightVersion weight_version;
  bool operator==(const RegisterAck&) const = default;
};

// worker -> scheduler, every heartbeat_interval_ms.
struct Heartbeat {
  WorkerId worker_id;  // non-zero
  uint64_t epoch = 0;
  uint32_t running_sequences = 0;
  uint64_t queued_tokens = 0;
  uint32_t free_pages = 0;
  uint32_t used_pages = 0;
  uint64_t decoded_tokens_total = 0;
  WeightVersion weight_version;
  uint32_t total_pages = 0;   // 0: pages not reported (free/used_pages mean nothing)
  uint64_t batches_seen = 0;  // SegmentTaskBatch messages received so far
  bool operator==(const Heartbeat&) const = default;
};

// Decode one segment for every child of `parent_node_id`.
struct SegmentTask {
  TaskId task_id;         // non-zero
  QueryId query_id;       // non-zero
  NodeId parent_node_id;  // 0 = root segment: prefix_tokens then holds the whole prompt
  std::vector<int32_t> prefix_tokens;  // empty when the worker holds the parent's KV
  std::vector<NodeId> child_node_ids;  // non-empty, non-zero, distinct
  std::vector<uint64_t> child_seeds;   // one per child
  uint32_t max_new_tokens = 0;         // >= 1
  float temperature = 1.0f;            // finite, >= 0 (0 = greedy)
  float top_p = 1.0f;                  // in (0, 1]
  uint32_t top_k = 0;                  // 0 = off
  bool stop_at_eos = true;
  WeightVersion weight_version;
  bool operator==(const SegmentTask&) const = default;
};

// scheduler -> worker.
struct SegmentTaskBatch {
  std::vector<SegmentTask> tasks;  // non-empty
  bool operator==(const SegmentTaskBatch&) const = default;
};

enum class SegmentFinish : uint8_t { kLength = 0, kEos = 1 };

struct ChildResult {
  NodeId node_id;  // non-zero
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;  // one per token
  SegmentFinish finish = SegmentFinish::kLength;
  WeightVersion weight_version;
  bool operator==(const ChildResult&) const = default;
};

struct SegmentResult {
  TaskId task_id;                     // non-zero
  WorkerId worker_id;                 // non-zero
  std::vector<ChildResult> children;  // non-empty
  double queue_ms = 0;                // timings: finite, >= 0
  double prefill_ms = 0;
  double decode_ms = 0;
  uint32_t prefilled_tokens = 0;
  bool operator==(const SegmentResult&) const = default;
};

// worker -> scheduler.
struct SegmentResultBatch {
  std::vector<SegmentResult> results;  // non-empty
  // The sender's KV pool after these results: free pages of total_pages (0: not reported),
  // and the SegmentTaskBatch messages it had received, so the scheduler knows which of the
  // tasks it sent these figures already count.
  uint32_t free_pages = 0;
  uint32_t total_pages = 0;
  uint64_t batches_seen = 0;
  bool operator==(const SegmentResultBatch&) const = default;
};

// worker -> scheduler: the task was not run (e.g. kResourceExhausted: out of pages).
struct TaskRejected {
  TaskId task_id;                           // non-zero
  StatusCode code = StatusCode::kInternal;  // a known code, not kOk
  std::string message;
  bool operator==(const TaskRejected&) const = default;
};

// scheduler -> worker: free the KV pages of these nodes.
struct ReleaseNodes {
  std::vector<NodeId> node_ids;  // non-zero
  bool operator==(const ReleaseNodes&) const = default;
};

// learner -> worker: chunks of `version` follow. checksum is Fnv1a64 of all bytes.
struct WeightVersionNotice {
  WeightVersion version;
  uint64_t total_bytes = 0;
  uint32_t n_chunks = 0;  // >= 1
  uint64_t checksum = 0;
  bool operator==(const WeightVersionNotice&) const = default;
};

// learner -> worker: bytes [offset, offset + bytes.size()) of the flat weight buffer.
struct WeightChunk {
  WeightVersion version;
  uint32_t chunk_index = 0;     // < n_chunks
  uint32_t n_chunks = 0;        // >= 1
  uint64_t offset = 0;          // offset + size does not overflow
  std::vector<uint8_t> bytes;   // <= CodecOptions::max_weight_chunk_bytes
  uint64_t chunk_checksum = 0;  // Fnv1a64(bytes); checked on decode
  bool operator==(const WeightChunk&) const = default;
};

// worker -> learner/scheduler: the version was (or was not) installed.
struct WeightAck {
  WeightVersion version;
  bool ok = false;
  std::string message;
  bool operator==(const WeightAck&) const = default;
};

// scheduler -> learner: finished trees for one training step. Node ids are non-zero,
// parents come before children, logprobs match tokens, leaves name nodes of their tree.
struct TreeBatch {
  uint64_t step = 0;
  std::vector<TreeRecord> trees;
  // The scheduler's dataset cursor after this step's prompts (prompts drawn since the run
  // began; 0: not reported). The learner writes it into its checkpoints (state.json), so a
  // resumed run continues the prompt order where the checkpoint left it.
  uint64_t prompts_drawn = 0;
  bool operator==(const TreeBatch& other) const;  // field-wise, trees included
};

struct Metric {
  std::string name;  // non-empty
  double value = 0;
  bool operator==(const Metric&) const = default;
};

// learner -> scheduler: step finished, weights of new_version published.
struct TrainDone {
  uint64_t step = 0;
  WeightVersion new_version;
  std::vector<Metric> metrics;
  bool operator==(const TrainDone&) const = default;
};

// any -> any: stop after draining.
struct Shutdown {
  std::string reason;
  bool operator==(const Shutdown&) const = default;
};

// any -> any: a message of type `about` was refused.
struct ErrorReply {
  StatusCode code = StatusCode::kInternal;  // a known code, not kOk
  std::string message;
  MessageType about = MessageType::kUnknown;
  bool operator==(const ErrorReply&) const = default;
};

// scheduler -> worker: move the KV of `node_ids` from one worker to another. Sent to both:
// the source (send) exports them in KvChunks straight to the destination's peer endpoint; the
// destination (!send) expects the transfer and answers KvMigrated when it is imported.
struct KvMigrate {
  uint64_t transfer_id = 0;      // non-zero
  std::vector<NodeId> node_ids;  // non-empty, non-zero
  bool send = false;
  WorkerId peer_worker;       // the other side
  std::string dest_endpoint;  // send: where to send the chunks (non-empty)
  bool operator==(const KvMigrate&) const = default;
};

// One migrated node: its positions and its block table as indices into the transfer's pages.
struct KvNode {
  NodeId node_id;
  uint32_t length = 0;
  int32_t last_token = 0;
  WeightVersion weight_version;
  std::vector<uint32_t> pages;  // < KvChunk::total_pages each
  bool operator==(const KvNode&) const = default;
};

// worker -> worker: pages [page_begin, page_begin + page_count) of a transfer's page list;
// each page is all layers' K rows then V rows (n_layers * 2 * page_size * kv_dim floats).
struct KvChunk {
  uint64_t transfer_id = 0;  // non-zero
  WorkerId source_worker;
  uint32_t index = 0;         // < count
  uint32_t count = 0;         // >= 1
  std::vector<KvNode> nodes;  // chunk 0 only (non-empty there)
  uint32_t page_begin = 0;
  uint32_t page_count = 0;
  uint32_t total_pages = 0;
  uint32_t n_layers = 0;
  uint32_t page_size = 0;
  uint32_t kv_dim = 0;
  std::vector<uint8_t> data;  // page_count pages of floats
  uint64_t checksum = 0;      // Fnv1a64(data); checked on decode
  bool operator==(const KvChunk&) const = default;
};

// worker -> scheduler: a transfer ended on this side.
struct KvMigrated {
  uint64_t transfer_id = 0;  // non-zero
  bool ok = false;
  std::string message;
  std::vector<NodeId> node_ids;
  uint64_t bytes = 0;
  bool operator==(const KvMigrated&) const = default;
};

// worker -> scheduler: the worker is leaving (SIGTERM, `cluster scale`). drain: place no new
// tasks on it, let its running segments finish and its held KV move to others (KvMigrate) or
// be recomputed elsewhere; the scheduler answers Shutdown once nothing needs it any more.
// !drain: it is gone now (after that Shutdown, or a second signal); the registry forgets it at
// once instead of after the heartbeat timeout.
struct Deregister {
  std::string reason;
  bool drain = false;
  bool operator==(const Deregister&) const = default;
};

// Alternatives are in MessageType order (index + 1 == wire type).
using Payload = std::variant<RegisterWorker, RegisterAck, RegisterLearner, Heartbeat,
                             SegmentTaskBatch, SegmentResultBatch, TaskRejected, ReleaseNodes,
                             WeightVersionNotice, WeightChunk, WeightAck, TreeBatch, TrainDone,
                             Shutdown, ErrorReply, KvMigrate, KvChunk, KvMigrated, Deregister>;

// One frame: envelope fields plus one payload.
struct Message {
  uint16_t version = kProtocolVersion;
  uint32_t sender = 0;  // assigned id (RegisterAck); 0 before registration and for the scheduler
  uint64_t epoch = 0;   // sender's registration epoch; receivers drop stale epochs
  Payload payload;

  MessageType type() const { return static_cast<MessageType>(payload.index() + 1); }
  template <typename T>
  const T* get_if() const {
    return std::get_if<T>(&payload);
  }
  bool operator==(const Message&) const = default;
};

// Limits applied by Decode (and by Validate where they concern payload content).
struct CodecOptions {
  size_t max_frame_bytes = size_t{64} << 20;         // whole frame
  size_t max_weight_chunk_bytes = size_t{32} << 20;  // WeightChunk::bytes
  uint64_t traversal_limit_words = 0;  // capnp read limit; 0 = frame size in words * 2
  int nesting_limit = 16;              // capnp pointer nesting limit
};

// Checks the content rules stated on the fields above (ids non-zero, lengths agree, chunk
// bounds and checksum, ...). Decode applies it; senders may call it before Encode.
Status Validate(const Message& message, const CodecOptions& options = {});

// FNV-1a 64-bit over `bytes` (weight checksums); `seed` chains calls over consecutive parts.
inline constexpr uint64_t kFnv64Offset = 0xcbf29ce484222325ULL;
// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF). Names that reach JSON and logs are checked with it.

uint64_t Fnv1a64(std::span<const uint8_t> bytes, uint64_t seed = kFnv64Offset);

}  // namespace treepo::protocols
