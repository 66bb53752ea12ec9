#include "protocols/sample_messages.h"

namespace treepo::protocols {
namespace {

Message Wrap(Payload payload, uint32_t sender, uint64_t epoch) {
  Message m;
  m.sender = sender;
  m.epoch = epoch;
  m.payload = std::move(payload);
  return m;
}

TreeRecord SampleTree() {
  TreeRecord t;
  t.query_id = "gsm8k-0017";
  t.prompt = "Q: 2+2?";
  t.answer = "4";
  t.prompt_tokens = {1, 48, 29906, 29974};
  TreeNodeRecord root_child;
  root_child.id = 101;
  root_child.depth = 1;
  root_child.tokens = {310, 311};
  root_child.logprobs = {-0.25f, -1.5f};
  root_child.text = " It is";
  root_child.worker = 3;
  root_child.weight_version = 7;
  TreeNodeRecord leaf;
  leaf.id = 102;
  leaf.parent = 101;
  leaf.depth = 2;
  leaf.tokens = {29946, 2};
  leaf.logprobs = {-0.125f, -0.0625f};
  leaf.text = " 4";
  leaf.finish = FinishReason::kEos;
  leaf.worker = 4;
  leaf.weight_version = 7;
  t.nodes = {root_child, leaf};
  t.leaves = {TreeLeafRecord{102, 1.0f, FinishReason::kEos, 4}};
  return t;
}

}  // namespace

std::vector<Message> SampleMessages() {
  std::vector<Message> out;
  out.push_back(Wrap(RegisterWorker{"worker-a", 4, 4096, 16, 0x1234abcd5678ef00ULL}, 0, 0));
  out.push_back(Wrap(RegisterAck{3, 11, 500, WeightVersion(7)}, 0, 0));
  out.push_back(Wrap(RegisterLearner{"learner-0", 1, 2, 0x1234abcd5678ef00ULL}, 0, 0));
  out.push_back(
      Wrap(Heartbeat{WorkerId(3), 11, 12, 3456, 1000, 3096, 987654321, WeightVersion(7)}, 3, 11));

  SegmentTask root{TaskId(21),
                   QueryId(5),
                   NodeId(0),
                   {1, 48, 29906, 29974},
                   {NodeId(101), NodeId(201)},
                   {99, 100},
                   64,
                   0.8f,
                   0.95f,
                   40,
                   true,
                   WeightVersion(7)};
  SegmentTask inner{TaskId(22), QueryId(5), NodeId(101), {}, {NodeId(102)}, {7},
                    32,         1.0f,       1.0f,        0,  false,         WeightVersion(7)};
  out.push_back(Wrap(SegmentTaskBatch{{root, inner}}, 0, 0));

  SegmentResult result{
      TaskId(21),
      WorkerId(3),
      {ChildResult{
           NodeId(101), {310, 311}, {-0.25f, -1.5f}, SegmentFinish::kLength, WeightVersion(7)},
       ChildResult{NodeId(201), {2}, {-0.5f}, SegmentFinish::kEos, WeightVersion(7)}},
      1.5,
      2.25,
      10.125,
      4};
  out.push_back(Wrap(SegmentResultBatch{{result}}, 3, 11));
  out.push_back(
      Wrap(TaskRejected{TaskId(23), StatusCode::kResourceExhausted, "out of KV pages"}, 3, 11));
  out.push_back(Wrap(ReleaseNodes{{NodeId(101), NodeId(201)}}, 0, 0));

  std::vector<uint8_t> weights = {0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, 0x42, 0x13};
  out.push_back(
      Wrap(WeightVersionNotice{WeightVersion(8), weights.size(), 1, Fnv1a64(weights)}, 1, 2));
  out.push_back(Wrap(WeightChunk{WeightVersion(8), 0, 1, 0, weights, Fnv1a64(weights)}, 1, 2));
  out.push_back(Wrap(WeightAck{WeightVersion(8), true, "installed"}, 3, 11));
  out.push_back(Wrap(TreeBatch{42, {SampleTree()}}, 0, 0));
  out.push_back(Wrap(TrainDone{42, WeightVersion(8), {{"loss", 0.6931}, {"kl", 0.0125}}}, 1, 2));
  out.push_back(Wrap(Shutdown{"run finished"}, 0, 0));
  out.push_back(Wrap(
      ErrorReply{StatusCode::kFailedPrecondition, "stale epoch", MessageType::kSegmentResultBatch},
      0, 0));
  // Appended after protocol v1's golden frames (tests/data/protocol_v1_golden.bin).
  out.push_back(Wrap(
      KvMigrate{77, {NodeId(101), NodeId(102)}, true, WorkerId(4), "tcp://127.0.0.1:40999"}, 0, 0));
  std::vector<uint8_t> page(1 * 2 * 2 * 3 * sizeof(float));
  for (size_t i = 0; i < page.size(); ++i) page[i] = static_cast<uint8_t>(i * 7);
  out.push_back(Wrap(KvChunk{77,
                             WorkerId(3),
                             0,
                             1,
                             {KvNode{NodeId(101), 2, 17, WeightVersion(8), {0}}},
                             0,
                             1,
                             1,
                             1,
                             2,
                             3,
                             page,
                             Fnv1a64(page)},
                     3, 11));
  out.push_back(Wrap(KvMigrated{77, true, "", {NodeId(101)}, page.size()}, 4, 12));
  out.push_back(Wrap(Deregister{"SIGTERM", true}, 4, 12));
  return out;
}

}  // namespace treepo::protocols
