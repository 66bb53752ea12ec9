// Decode: untrusted frame -> capnp Envelope (bounded reader) -> plain message -> Validate.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <climits>
#include <cstring>
#include <exception>
#include <string>

#include "protocols/codec.h"
#include "treepo.capnp.h"

namespace treepo::protocols {
namespace {

using PayloadReader = wire::Envelope::Payload::Reader;

std::string Str(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

template <typename T, typename ListReader>
std::vector<T> Scalars(ListReader list) {
  std::vector<T> out;
  out.reserve(list.size());
  for (auto v : list) out.push_back(v);
  return out;
}

template <typename Id, typename ListReader>
std::vector<Id> Ids(ListReader list) {
  std::vector<Id> out;
  out.reserve(list.size());
  for (auto v : list) out.push_back(Id(v));
  return out;
}

Result<FinishReason> ReadTreeFinish(wire::TreeFinish f) {
  const auto raw = static_cast<uint16_t>(f);
  if (raw > static_cast<uint16_t>(FinishReason::kRepetition)) {
    return InvalidArgument("TreeBatch: unknown finish reason " + std::to_string(raw));
  }
  return static_cast<FinishReason>(raw);
}

Result<RegisterWorker> Read(wire::RegisterWorker::Reader r) {
  return RegisterWorker{
      Str(r.getWorkerName()),   r.getThreads(),          r.getPageCapacity(),
      r.getPageSize(),          r.getModelFingerprint(), r.getRegistrationId(),
      Str(r.getPeerEndpoint()), r.getPageBytes(),        WeightVersion(r.getWeightVersion())};
}

Result<RegisterAck> Read(wire::RegisterAck::Reader r) {
  return RegisterAck{r.getAssignedId(), r.getEpoch(), r.getHeartbeatIntervalMs(),
                     WeightVersion(r.getWeightVersion())};
}

Result<RegisterLearner> Read(wire::RegisterLearner::Reader r) {
  return RegisterLearner{Str(r.getLearnerName()), r.getRank(), r.getWorldSize(),
                         r.getModelFingerprint()};
}

Result<Heartbeat> Read(wire::Heartbeat::Reader r) {
  return Heartbeat{WorkerId(r.getWorkerId()), r.getEpoch(),
                   r.getRunningSequences(),   r.getQueuedTokens(),
                   r.getFreePages(),          r.getUsedPages(),
                   r.getDecodedTokensTotal(), WeightVersion(r.getWeightVersion()),
                   r.getTotalPages(),         r.getBatchesSeen()};
}

Result<SegmentTaskBatch> Read(wire::SegmentTaskBatch::Reader r) {
  SegmentTaskBatch m;
  m.tasks.reserve(r.getTasks().size());
  for (auto t : r.getTasks()) {
    SegmentTask task;
    task.task_id = TaskId(t.getTaskId());
    task.query_id = QueryId(t.getQueryId());
    task.parent_node_id = NodeId(t.getParentNodeId());
    task.prefix_tokens = Scalars<int32_t>(t.getPrefixTokens());
    task.child_node_ids = Ids<NodeId>(t.getChildNodeIds());
    task.child_seeds = Scalars<uint64_t>(t.getChildSeeds());
    task.max_new_tokens = t.getMaxNewTokens();
    task.temperature = t.getTemperature();
    task.top_p = t.getTopP();
    task.top_k = t.getTopK();
    task.stop_at_eos = t.getStopAtEos();
    task.weight_version = WeightVersion(t.getWeightVersion());
    m.tasks.push_back(std::move(task));
  }
  return m;
}

Result<SegmentResultBatch> Read(wire::SegmentResultBatch::Reader r) {
  SegmentResultBatch m;
  m.free_pages = r.getFreePages();
  m.total_pages = r.getTotalPages();
  m.batches_seen = r.getBatchesSeen();
  m.results.reserve(r.getResults().size());
  for (auto res : r.getResults()) {
    SegmentResult out;
    out.task_id = TaskId(res.getTaskId());
    out.worker_id = WorkerId(res.getWorkerId());
    out.children.reserve(res.getChildren().size());
    for (auto c : res.getChildren()) {
      const auto finish = static_cast<uint16_t>(c.getFinish());
      if (finish > static_cast<uint16_t>(SegmentFinish::kEos)) {
        return InvalidArgument("SegmentResult: unknown finish reason " + std::to_string(finish));
      }
      out.children.push_back(ChildResult{
          NodeId(c.getNodeId()), Scalars<int32_t>(c.getTokens()), Scalars<float>(c.getLogprobs()),
          static_cast<SegmentFinish>(finish), WeightVersion(c.getWeightVersion())});
    }
    out.queue_ms = res.getQueueMs();
    out.prefill_ms = res.getPrefillMs();
    out.decode_ms = res.getDecodeMs();
    out.prefilled_tokens = res.getPrefilledTokens();
    m.results.push_back(std::move(out));
  }
  return m;
}

Result<TaskRejected> Read(wire::TaskRejected::Reader r) {
  return TaskRejected{TaskId(r.getTaskId()), static_cast<StatusCode>(r.getStatusCode()),
                      Str(r.getMessage())};
}

Result<ReleaseNodes> Read(wire::ReleaseNodes::Reader r) {
  return ReleaseNodes{Ids<NodeId>(r.getNodeIds())};
}

Result<WeightVersionNotice> Read(wire::WeightVersionNotice::Reader r) {
  return WeightVersionNotice{WeightVersion(r.getVersion()), r.getTotalBytes(), r.getNChunks(),
                             r.getChecksum()};
}

Result<WeightChunk> ReadChunk(wire::WeightChunk::Reader r, const CodecOptions& options) {
  auto bytes = r.getBytes();
  // Checked before the copy so an oversized chunk costs nothing.
  if (bytes.size() > options.max_weight_chunk_bytes) {
    return ResourceExhausted("WeightChunk: " + std::to_string(bytes.size()) +
                             " bytes exceeds the chunk limit of " +
                             std::to_string(options.max_weight_chunk_bytes));
  }
  return WeightChunk{WeightVersion(r.getVersion()),
                     r.getChunkIndex(),
                     r.getNChunks(),
                     r.getOffset(),
                     std::vector<uint8_t>(bytes.begin(), bytes.end()),
                     r.getChunkChecksum()};
}

Result<WeightAck> Read(wire::WeightAck::Reader r) {
  return WeightAck{WeightVersion(r.getVersion()), r.getOk(), Str(r.getMessage())};
}

Result<TreeRecord> ReadTree(wire::Tree::Reader r) {
  TreeRecord t;
  t.query_id = Str(r.getQueryId());
  t.prompt = Str(r.getPrompt());
  t.answer = Str(r.getAnswer());
  t.prompt_tokens = Scalars<int32_t>(r.getPromptTokens());
  t.nodes.reserve(r.getNodes().size());
  for (auto n : r.getNodes()) {
    TreeNodeRecord node;
    node.id = n.getId();
    if (n.getHasParent()) node.parent = n.getParent();
    if (n.getDepth() > static_cast<uint32_t>(INT_MAX)) {
      return InvalidArgument("TreeBatch: node depth out of range");
    }
    node.depth = static_cast<int>(n.getDepth());
    node.tokens = Scalars<int32_t>(n.getTokens());
    node.logprobs = Scalars<float>(n.getLogprobs());
    node.text = Str(n.getText());
    TREEPO_ASSIGN_OR_RETURN(node.finish, ReadTreeFinish(n.getFinish()));
    node.worker = n.getWorker();
    node.weight_version = n.getWeightVersion();
    t.nodes.push_back(std::move(node));
  }
  t.leaves.reserve(r.getLeaves().size());
  for (auto l : r.getLeaves()) {
    TreeLeafRecord leaf;
    leaf.node = l.getNode();
    leaf.reward = l.getReward();
    TREEPO_ASSIGN_OR_RETURN(leaf.finish, ReadTreeFinish(l.getFinish()));
    if (l.getResponseTokens() > static_cast<uint32_t>(INT_MAX)) {
      return InvalidArgument("TreeBatch: leaf response tokens out of range");
    }
    leaf.response_tokens = static_cast<int>(l.getResponseTokens());
    t.leaves.push_back(leaf);
  }
  return t;
}

Result<TreeBatch> Read(wire::TreeBatch::Reader r) {
  TreeBatch m;
  m.step = r.getStep();
  m.prompts_drawn = r.getPromptsDrawn();
  m.trees.reserve(r.getTrees().size());
  for (auto t : r.getTrees()) {
    TREEPO_ASSIGN_OR_RETURN(TreeRecord tree, ReadTree(t));
    m.trees.push_back(std::move(tree));
  }
  return m;
}

Result<TrainDone> Read(wire::TrainDone::Reader r) {
  TrainDone m;
  m.step = r.getStep();
  m.new_version = WeightVersion(r.getNewVersion());
  m.metrics.reserve(r.getMetrics().size());
  for (auto metric : r.getMetrics())
    m.metrics.push_back({Str(metric.getName()), metric.getValue()});
  return m;
}

Result<Shutdown> Read(wire::Shutdown::Reader r) { return Shutdown{Str(r.getReason())}; }

Result<ErrorReply> Read(wire::ErrorReply::Reader r) {
  return ErrorReply{static_cast<StatusCode>(r.getCode()), Str(r.getMessage()),
                    static_cast<MessageType>(r.getAbout())};
}

Result<KvMigrate> Read(wire::KvMigrate::Reader r) {
  return KvMigrate{r.getTransferId(), Ids<NodeId>(r.getNodeIds()), r.getSend(),
                   WorkerId(r.getPeerWorker()), Str(r.getDestEndpoint())};
}

Result<KvChunk> ReadKvChunk(wire::KvChunk::Reader r, const CodecOptions& options) {
  auto data = r.getData();
  // Checked before the copy so an oversized chunk costs nothing.
  if (data.size() > options.max_weight_chunk_bytes) {
    return ResourceExhausted("KvChunk: " + std::to_string(data.size()) +
                             " bytes exceeds the chunk limit of " +
                             std::to_string(options.max_weight_chunk_bytes));
  }
  KvChunk m;
  m.transfer_id = r.getTransferId();
  m.source_worker = WorkerId(r.getSourceWorker());
  m.index = r.getIndex();
  m.count = r.getCount();
  m.nodes.reserve(r.getNodes().size());
  for (auto n : r.getNodes()) {
    m.nodes.push_back(KvNode{NodeId(n.getNodeId()), n.getLength(), n.getLastToken(),
                             WeightVersion(n.getWeightVersion()), Scalars<uint32_t>(n.getPages())});
  }
  m.page_begin = r.getPageBegin();
  m.page_count = r.getPageCount();
  m.total_pages = r.getTotalPages();
  m.n_layers = r.getNLayers();
  m.page_size = r.getPageSize();
  m.kv_dim = r.getKvDim();
  m.data.assign(data.begin(), data.end());
  m.checksum = r.getChecksum();
  return m;
}

Result<KvMigrated> Read(wire::KvMigrated::Reader r) {
  return KvMigrated{r.getTransferId(), r.getOk(), Str(r.getMessage()), Ids<NodeId>(r.getNodeIds()),
                    r.getBytes()};
}

Result<Deregister> Read(wire::Deregister::Reader r) {
  return Deregister{Str(r.getReason()), r.getDrain()};
}

template <typename T>
Result<Payload> Lift(Result<T> r) {
  if (!r.ok()) return r.status();
  return Payload(std::move(r).value());
}

Result<Payload> ReadPayload(PayloadReader p, const CodecOptions& options) {
  using W = wire::Envelope::Payload;
  switch (p.which()) {
    case W::REGISTER_WORKER:
      return Lift(Read(p.getRegisterWorker()));
    case W::REGISTER_ACK:
      return Lift(Read(p.getRegisterAck()));
    case W::REGISTER_LEARNER:
      return Lift(Read(p.getRegisterLearner()));
    case W::HEARTBEAT:
      return Lift(Read(p.getHeartbeat()));
    case W::SEGMENT_TASK_BATCH:
      return Lift(Read(p.getSegmentTaskBatch()));
    case W::SEGMENT_RESULT_BATCH:
      return Lift(Read(p.getSegmentResultBatch()));
    case W::TASK_REJECTED:
      return Lift(Read(p.getTaskRejected()));
    case W::RELEASE_NODES:
      return Lift(Read(p.getReleaseNodes()));
    case W::WEIGHT_VERSION_NOTICE:
      return Lift(Read(p.getWeightVersionNotice()));
    case W::WEIGHT_CHUNK:
      return Lift(ReadChunk(p.getWeightChunk(), options));
    case W::WEIGHT_ACK:
      return Lift(Read(p.getWeightAck()));
    case W::TREE_BATCH:
      return Lift(Read(p.getTreeBatch()));
    case W::TRAIN_DONE:
      return Lift(Read(p.getTrainDone()));
    case W::SHUTDOWN:
      return Lift(Read(p.getShutdown()));
    case W::ERROR_REPLY:
      return Lift(Read(p.getErrorReply()));
    case W::KV_MIGRATE:
      return Lift(Read(p.getKvMigrate()));
    case W::KV_CHUNK:
      return Lift(ReadKvChunk(p.getKvChunk(), options));
    case W::KV_MIGRATED:
      return Lift(Read(p.getKvMigrated()));
    case W::DEREGISTER:
      return Lift(Read(p.getDeregister()));
    case W::NONE:
      break;
  }
  return Unimplemented("frame has no known payload (union tag " +
                       std::to_string(static_cast<uint16_t>(p.which())) + ")");
}

// Everything that touches capnp readers; may throw kj::Exception.
Result<Message> DecodeWords(kj::ArrayPtr<const capnp::word> words, const CodecOptions& options) {
  capnp::ReaderOptions reader_options;
  reader_options.traversalLimitInWords = options.traversal_limit_words != 0
                                             ? options.traversal_limit_words
                                             : std::max<uint64_t>(words.size() * 2, 1024);
  reader_options.nestingLimit = options.nesting_limit;
  capnp::FlatArrayMessageReader reader(words, reader_options);
  if (reader.getEnd() != words.end()) {
    return DataLoss("frame has " +
                    std::to_string((words.end() - reader.getEnd()) * sizeof(capnp::word)) +
                    " trailing bytes after the message");
  }
  const wire::Envelope::Reader env = reader.getRoot<wire::Envelope>();
  Message message;
  message.version = env.getVersion();
  if (message.version != kProtocolVersion) {
    return FailedPrecondition("protocol version " + std::to_string(message.version) +
                              ", this build speaks " + std::to_string(kProtocolVersion));
  }
  const auto type = static_cast<uint16_t>(env.getType());
  if (type == 0 || type > kMaxMessageType) {
    return Unimplemented("unknown message type " + std::to_string(type));
  }
  // Union members are declared in MessageType order, so the tag equals the type.
  const auto tag = static_cast<uint16_t>(env.getPayload().which());
  if (tag != type) {
    return InvalidArgument("envelope type " +
                           std::string(MessageTypeName(static_cast<MessageType>(type))) +
                           " does not match its payload (union tag " + std::to_string(tag) + ")");
  }
  message.sender = env.getSender();
  message.epoch = env.getEpoch();
  TREEPO_ASSIGN_OR_RETURN(message.payload, ReadPayload(env.getPayload(), options));
  return message;
}

}  // namespace

Result<Message> Decode(std::span<const uint8_t> frame, const CodecOptions& options) {
  if (frame.size() > options.max_frame_bytes) {
    return ResourceExhausted("frame of " + std::to_string(frame.size()) +
                             " bytes exceeds the limit of " +
                             std::to_string(options.max_frame_bytes));
  }
  if (frame.empty() || frame.size() % sizeof(capnp::word) != 0) {
    return DataLoss("frame length " + std::to_string(frame.size()) +
                    " is not a positive multiple of 8");
  }
  const size_t n_words = frame.size() / sizeof(capnp::word);
  kj::Array<capnp::word> aligned;
  kj::ArrayPtr<const capnp::word> words;
  if (reinterpret_cast<uintptr_t>(frame.data()) % alignof(capnp::word) == 0) {
    words = kj::arrayPtr(reinterpret_cast<const capnp::word*>(frame.data()), n_words);
  } else {
    aligned = kj::heapArray<capnp::word>(n_words);
    std::memcpy(aligned.begin(), frame.data(), frame.size());
    words = aligned;
  }

  try {
    TREEPO_ASSIGN_OR_RETURN(Message message, DecodeWords(words, options));
    TREEPO_RETURN_IF_ERROR(Validate(message, options));
    return message;
  } catch (const kj::Exception& e) {
    return DataLoss("malformed frame: " + std::string(e.getDescription().cStr()));
  } catch (const std::exception& e) {
    return DataLoss(std::string("malformed frame: ") + e.what());
  }
}

}  // namespace treepo::protocols
