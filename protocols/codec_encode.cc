// Encode: plain messages -> capnp Envelope -> unpacked flat-array frame.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/io.h>

#include <variant>

#include "protocols/codec.h"
#include "treepo.capnp.h"

namespace treepo::protocols {
namespace {

kj::StringPtr Str(const std::string& s) { return kj::StringPtr(s.c_str(), s.size()); }

template <typename ListBuilder, typename Vec>
void FillScalars(ListBuilder list, const Vec& values) {
  for (size_t i = 0; i < values.size(); ++i) list.set(i, values[i]);
}

template <typename ListBuilder, typename Vec>
void FillIds(ListBuilder list, const Vec& ids) {
  for (size_t i = 0; i < ids.size(); ++i) list.set(i, ids[i].value());
}

void Put(const RegisterWorker& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initRegisterWorker();
  b.setWorkerName(Str(m.worker_name));
  b.setThreads(m.threads);
  b.setPageCapacity(m.page_capacity);
  b.setPageSize(m.page_size);
  b.setModelFingerprint(m.model_fingerprint);
  b.setRegistrationId(m.registration_id);
  b.setPeerEndpoint(Str(m.peer_endpoint));
  b.setPageBytes(m.page_bytes);
  b.setWeightVersion(m.weight_version.value());
}

void Put(const RegisterAck& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initRegisterAck();
  b.setAssignedId(m.assigned_id);
  b.setEpoch(m.epoch);
  b.setHeartbeatIntervalMs(m.heartbeat_interval_ms);
  b.setWeightVersion(m.weight_version.value());
}

void Put(const RegisterLearner& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initRegisterLearner();
  b.setLearnerName(Str(m.learner_name));
  b.setRank(m.rank);
  b.setWorldSize(m.world_size);
  b.setModelFingerprint(m.model_fingerprint);
}

void Put(const Heartbeat& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initHeartbeat();
  b.setWorkerId(m.worker_id.value());
  b.setEpoch(m.epoch);
  b.setRunningSequences(m.running_sequences);
  b.setQueuedTokens(m.queued_tokens);
  b.setFreePages(m.free_pages);
  b.setUsedPages(m.used_pages);
  b.setDecodedTokensTotal(m.decoded_tokens_total);
  b.setWeightVersion(m.weight_version.value());
  b.setTotalPages(m.total_pages);
  b.setBatchesSeen(m.batches_seen);
}

void Put(const SegmentTaskBatch& m, wire::Envelope::Payload::Builder p) {
  auto tasks = p.initSegmentTaskBatch().initTasks(m.tasks.size());
  for (size_t i = 0; i < m.tasks.size(); ++i) {
    const SegmentTask& t = m.tasks[i];
    auto b = tasks[i];
    b.setTaskId(t.task_id.value());
    b.setQueryId(t.query_id.value());
    b.setParentNodeId(t.parent_node_id.value());
    FillScalars(b.initPrefixTokens(t.prefix_tokens.size()), t.prefix_tokens);
    FillIds(b.initChildNodeIds(t.child_node_ids.size()), t.child_node_ids);
    FillScalars(b.initChildSeeds(t.child_seeds.size()), t.child_seeds);
    b.setMaxNewTokens(t.max_new_tokens);
    b.setTemperature(t.temperature);
    b.setTopP(t.top_p);
    b.setTopK(t.top_k);
    b.setStopAtEos(t.stop_at_eos);
    b.setWeightVersion(t.weight_version.value());
  }
}

void Put(const SegmentResultBatch& m, wire::Envelope::Payload::Builder p) {
  auto batch = p.initSegmentResultBatch();
  batch.setFreePages(m.free_pages);
  batch.setTotalPages(m.total_pages);
  batch.setBatchesSeen(m.batches_seen);
  auto results = batch.initResults(m.results.size());
  for (size_t i = 0; i < m.results.size(); ++i) {
    const SegmentResult& r = m.results[i];
    auto b = results[i];
    b.setTaskId(r.task_id.value());
    b.setWorkerId(r.worker_id.value());
    auto children = b.initChildren(r.children.size());
    for (size_t j = 0; j < r.children.size(); ++j) {
      const ChildResult& c = r.children[j];
      auto cb = children[j];
      cb.setNodeId(c.node_id.value());
      FillScalars(cb.initTokens(c.tokens.size()), c.tokens);
      FillScalars(cb.initLogprobs(c.logprobs.size()), c.logprobs);
      cb.setFinish(static_cast<wire::SegmentFinish>(c.finish));
      cb.setWeightVersion(c.weight_version.value());
    }
    b.setQueueMs(r.queue_ms);
    b.setPrefillMs(r.prefill_ms);
    b.setDecodeMs(r.decode_ms);
    b.setPrefilledTokens(r.prefilled_tokens);
  }
}

void Put(const TaskRejected& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initTaskRejected();
  b.setTaskId(m.task_id.value());
  b.setStatusCode(static_cast<uint16_t>(m.code));
  b.setMessage(Str(m.message));
}

void Put(const ReleaseNodes& m, wire::Envelope::Payload::Builder p) {
  FillIds(p.initReleaseNodes().initNodeIds(m.node_ids.size()), m.node_ids);
}

void Put(const WeightVersionNotice& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initWeightVersionNotice();
  b.setVersion(m.version.value());
  b.setTotalBytes(m.total_bytes);
  b.setNChunks(m.n_chunks);
  b.setChecksum(m.checksum);
}

void Put(const WeightChunk& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initWeightChunk();
  b.setVersion(m.version.value());
  b.setChunkIndex(m.chunk_index);
  b.setNChunks(m.n_chunks);
  b.setOffset(m.offset);
  b.setBytes(kj::arrayPtr(m.bytes.data(), m.bytes.size()));
  b.setChunkChecksum(m.chunk_checksum);
}

void Put(const WeightAck& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initWeightAck();
  b.setVersion(m.version.value());
  b.setOk(m.ok);
  b.setMessage(Str(m.message));
}

void PutTree(const TreeRecord& t, wire::Tree::Builder b) {
  b.setQueryId(Str(t.query_id));
  b.setPrompt(Str(t.prompt));
  b.setAnswer(Str(t.answer));
  FillScalars(b.initPromptTokens(t.prompt_tokens.size()), t.prompt_tokens);
  auto nodes = b.initNodes(t.nodes.size());
  for (size_t i = 0; i < t.nodes.size(); ++i) {
    const TreeNodeRecord& n = t.nodes[i];
    auto nb = nodes[i];
    nb.setId(n.id);
    nb.setHasParent(n.parent.has_value());
    nb.setParent(n.parent.value_or(0));
    nb.setDepth(static_cast<uint32_t>(n.depth));
    FillScalars(nb.initTokens(n.tokens.size()), n.tokens);
    FillScalars(nb.initLogprobs(n.logprobs.size()), n.logprobs);
    nb.setText(Str(n.text));
    nb.setFinish(static_cast<wire::TreeFinish>(n.finish));
    nb.setWorker(n.worker);
    nb.setWeightVersion(n.weight_version);
  }
  auto leaves = b.initLeaves(t.leaves.size());
  for (size_t i = 0; i < t.leaves.size(); ++i) {
    const TreeLeafRecord& l = t.leaves[i];
    auto lb = leaves[i];
    lb.setNode(l.node);
    lb.setReward(l.reward);
    lb.setFinish(static_cast<wire::TreeFinish>(l.finish));
    lb.setResponseTokens(static_cast<uint32_t>(l.response_tokens));
  }
}

void Put(const TreeBatch& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initTreeBatch();
  b.setStep(m.step);
  b.setPromptsDrawn(m.prompts_drawn);
  auto trees = b.initTrees(m.trees.size());
  for (size_t i = 0; i < m.trees.size(); ++i) PutTree(m.trees[i], trees[i]);
}

void Put(const TrainDone& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initTrainDone();
  b.setStep(m.step);
  b.setNewVersion(m.new_version.value());
  auto metrics = b.initMetrics(m.metrics.size());
  for (size_t i = 0; i < m.metrics.size(); ++i) {
    metrics[i].setName(Str(m.metrics[i].name));
    metrics[i].setValue(m.metrics[i].value);
  }
}

void Put(const Shutdown& m, wire::Envelope::Payload::Builder p) {
  p.initShutdown().setReason(Str(m.reason));
}

void Put(const ErrorReply& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initErrorReply();
  b.setCode(static_cast<uint16_t>(m.code));
  b.setMessage(Str(m.message));
  b.setAbout(static_cast<wire::MessageType>(m.about));
}

void Put(const KvMigrate& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initKvMigrate();
  b.setTransferId(m.transfer_id);
  FillIds(b.initNodeIds(m.node_ids.size()), m.node_ids);
  b.setSend(m.send);
  b.setPeerWorker(m.peer_worker.value());
  b.setDestEndpoint(Str(m.dest_endpoint));
}

void Put(const KvChunk& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initKvChunk();
  b.setTransferId(m.transfer_id);
  b.setSourceWorker(m.source_worker.value());
  b.setIndex(m.index);
  b.setCount(m.count);
  auto nodes = b.initNodes(m.nodes.size());
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const KvNode& n = m.nodes[i];
    nodes[i].setNodeId(n.node_id.value());
    nodes[i].setLength(n.length);
    nodes[i].setLastToken(n.last_token);
    nodes[i].setWeightVersion(n.weight_version.value());
    FillScalars(nodes[i].initPages(n.pages.size()), n.pages);
  }
  b.setPageBegin(m.page_begin);
  b.setPageCount(m.page_count);
  b.setTotalPages(m.total_pages);
  b.setNLayers(m.n_layers);
  b.setPageSize(m.page_size);
  b.setKvDim(m.kv_dim);
  b.setData(kj::arrayPtr(m.data.data(), m.data.size()));
  b.setChecksum(m.checksum);
}

void Put(const KvMigrated& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initKvMigrated();
  b.setTransferId(m.transfer_id);
  b.setOk(m.ok);
  b.setMessage(Str(m.message));
  FillIds(b.initNodeIds(m.node_ids.size()), m.node_ids);
  b.setBytes(m.bytes);
}

void Put(const Deregister& m, wire::Envelope::Payload::Builder p) {
  auto b = p.initDeregister();
  b.setReason(Str(m.reason));
  b.setDrain(m.drain);
}

}  // namespace

std::vector<uint8_t> Encode(const Message& message) {
  capnp::MallocMessageBuilder builder;
  auto env = builder.initRoot<wire::Envelope>();
  env.setVersion(message.version);
  env.setType(static_cast<wire::MessageType>(message.type()));
  env.setSender(message.sender);
  env.setEpoch(message.epoch);
  std::visit([&](const auto& payload) { Put(payload, env.getPayload()); }, message.payload);

  // Serialize straight into the returned vector (one copy of the segments).
  std::vector<uint8_t> frame(capnp::computeSerializedSizeInWords(builder) * sizeof(capnp::word));
  kj::ArrayOutputStream out(kj::arrayPtr(frame.data(), frame.size()));
  capnp::writeMessage(out, builder);
  return frame;
}

}  // namespace treepo::protocols
