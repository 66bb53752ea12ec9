# The treepo wire protocol (docs/protocol.md). One frame is one unpacked, flat-array
# Cap'n Proto message whose root is an Envelope.
#
# APPEND-ONLY: never renumber, retype, rename-for-reuse or delete a field, enumerant or
# union member. Add new ones with the next ordinal. An incompatible change bumps
# kProtocolVersion in protocols/messages.h and gets a new golden frame file.
@0x8e92bef89c4228a6;

$import "/capnp/c++.capnp".namespace("treepo::protocols::wire");

enum MessageType {
  unknown @0;
  registerWorker @1;
  registerAck @2;
  registerLearner @3;
  heartbeat @4;
  segmentTaskBatch @5;
  segmentResultBatch @6;
  taskRejected @7;
  releaseNodes @8;
  weightVersionNotice @9;
  weightChunk @10;
  weightAck @11;
  treeBatch @12;
  trainDone @13;
  shutdown @14;
  errorReply @15;
  kvMigrate @16;
  kvChunk @17;
  kvMigrated @18;
  deregister @19;
}

struct RegisterWorker {
  workerName @0 :Text;
  threads @1 :UInt32;
  pageCapacity @2 :UInt32;
  pageSize @3 :UInt32;           # tokens per KV page
  modelFingerprint @4 :UInt64;
  registrationId @5 :UInt64;     # one registration attempt; its resends get the same ack (0: none)
  peerEndpoint @6 :Text;         # where other workers send it KV pages (KvChunk); empty: none
  pageBytes @7 :UInt64;          # bytes of one KV page over all layers (0: not reported)
  weightVersion @8 :UInt64;      # the weight version its engine runs (0: the model file's)
}

struct RegisterLearner {
  learnerName @0 :Text;
  rank @1 :UInt32;
  worldSize @2 :UInt32;
  modelFingerprint @3 :UInt64;
}

struct RegisterAck {
  assignedId @0 :UInt32;         # WorkerId or LearnerId value
  epoch @1 :UInt64;
  heartbeatIntervalMs @2 :UInt32;
  weightVersion @3 :UInt64;
}

struct Heartbeat {
  workerId @0 :UInt32;
  epoch @1 :UInt64;
  runningSequences @2 :UInt32;
  queuedTokens @3 :UInt64;
  freePages @4 :UInt32;
  usedPages @5 :UInt32;
  decodedTokensTotal @6 :UInt64;
  weightVersion @7 :UInt64;
  totalPages @8 :UInt32;         # 0: the sender does not report pages
  batchesSeen @9 :UInt64;        # SegmentTaskBatch messages received so far
}

struct SegmentTask {
  taskId @0 :UInt64;
  queryId @1 :UInt64;
  parentNodeId @2 :UInt64;       # 0 = none (root segment)
  prefixTokens @3 :List(Int32);  # empty when the worker holds the parent's KV
  childNodeIds @4 :List(UInt64);
  childSeeds @5 :List(UInt64);
  maxNewTokens @6 :UInt32;
  temperature @7 :Float32;
  topP @8 :Float32;
  topK @9 :UInt32;               # 0 = off
  stopAtEos @10 :Bool;
  weightVersion @11 :UInt64;
}

struct SegmentTaskBatch {
  tasks @0 :List(SegmentTask);
}

enum SegmentFinish {
  length @0;
  eos @1;
}

struct ChildResult {
  nodeId @0 :UInt64;
  tokens @1 :List(Int32);
  logprobs @2 :List(Float32);
  finish @3 :SegmentFinish;
  weightVersion @4 :UInt64;
}

struct SegmentResult {
  taskId @0 :UInt64;
  workerId @1 :UInt32;
  children @2 :List(ChildResult);
  queueMs @3 :Float64;
  prefillMs @4 :Float64;
  decodeMs @5 :Float64;
  prefilledTokens @6 :UInt32;
}

struct SegmentResultBatch {
  results @0 :List(SegmentResult);
  freePages @1 :UInt32;          # the sender's KV pages after these results (see totalPages)
  totalPages @2 :UInt32;         # 0: the sender does not report pages
  batchesSeen @3 :UInt64;        # SegmentTaskBatch messages received so far
}

struct TaskRejected {
  taskId @0 :UInt64;
  statusCode @1 :UInt16;         # treepo::StatusCode
  message @2 :Text;
}

struct ReleaseNodes {
  nodeIds @0 :List(UInt64);
}

struct WeightVersionNotice {
  version @0 :UInt64;
  totalBytes @1 :UInt64;
  nChunks @2 :UInt32;
  checksum @3 :UInt64;           # FNV-1a 64 of all bytes in offset order
}

struct WeightChunk {
  version @0 :UInt64;
  chunkIndex @1 :UInt32;
  nChunks @2 :UInt32;
  offset @3 :UInt64;
  bytes @4 :Data;
  chunkChecksum @5 :UInt64;      # FNV-1a 64 of bytes
}

struct WeightAck {
  version @0 :UInt64;
  ok @1 :Bool;
  message @2 :Text;
}

# Mirrors common/tree/tree_record.h FinishReason.
enum TreeFinish {
  none @0;
  finished @1;
  eos @2;
  maxTokens @3;
  maxDepth @4;
  repetition @5;
}

struct TreeNode {
  id @0 :UInt64;
  hasParent @1 :Bool;
  parent @2 :UInt64;
  depth @3 :UInt32;
  tokens @4 :List(Int32);
  logprobs @5 :List(Float32);
  text @6 :Text;                 # optional: empty when not sent
  finish @7 :TreeFinish;
  worker @8 :UInt32;
  weightVersion @9 :UInt64;
}

struct TreeLeaf {
  node @0 :UInt64;
  reward @1 :Float32;
  finish @2 :TreeFinish;
  responseTokens @3 :UInt32;
}

struct Tree {
  queryId @0 :Text;
  prompt @1 :Text;               # optional
  answer @2 :Text;               # optional
  promptTokens @3 :List(Int32);
  nodes @4 :List(TreeNode);
  leaves @5 :List(TreeLeaf);
}

struct TreeBatch {
  step @0 :UInt64;
  trees @1 :List(Tree);
  promptsDrawn @2 :UInt64;       # the dataset cursor after this step's prompts (0: not reported)
}

struct Metric {
  name @0 :Text;
  value @1 :Float64;
}

struct TrainDone {
  step @0 :UInt64;
  newVersion @1 :UInt64;
  metrics @2 :List(Metric);
}

struct Shutdown {
  reason @0 :Text;
}

struct ErrorReply {
  code @0 :UInt16;               # treepo::StatusCode
  message @1 :Text;
  about @2 :MessageType;
}

# scheduler -> worker: move the KV of `nodeIds` between two workers. The source (send = true)
# exports them to destEndpoint in KvChunks; the destination (send = false) expects them and
# answers KvMigrated once they are imported.
struct KvMigrate {
  transferId @0 :UInt64;
  nodeIds @1 :List(UInt64);
  send @2 :Bool;
  peerWorker @3 :UInt32;         # the other side's worker id
  destEndpoint @4 :Text;         # send = true: the destination's peer endpoint
}

struct KvNode {
  nodeId @0 :UInt64;
  length @1 :UInt32;             # positions held
  lastToken @2 :Int32;           # the pending token (fed to the first child row)
  weightVersion @3 :UInt64;
  pages @4 :List(UInt32);        # indices into the transfer's page list, in position order
}

# worker -> worker: pages [pageBegin, pageBegin + pageCount) of a transfer's page list, each
# page all layers' K then V rows (nLayers * 2 * pageSize * kvDim floats, little-endian).
struct KvChunk {
  transferId @0 :UInt64;
  sourceWorker @1 :UInt32;
  index @2 :UInt32;              # < count
  count @3 :UInt32;
  nodes @4 :List(KvNode);        # chunk 0 only
  pageBegin @5 :UInt32;
  pageCount @6 :UInt32;
  totalPages @7 :UInt32;
  nLayers @8 :UInt32;
  pageSize @9 :UInt32;
  kvDim @10 :UInt32;
  data @11 :Data;
  checksum @12 :UInt64;          # Fnv1a64(data)
}

# worker -> scheduler: a transfer ended on this side (ok: imported; else why not).
struct KvMigrated {
  transferId @0 :UInt64;
  ok @1 :Bool;
  message @2 :Text;
  nodeIds @3 :List(UInt64);
  bytes @4 :UInt64;
}

# worker -> scheduler: leaving. drain: stop giving it tasks, let its running segments finish
# and its held KV move away, then answer Shutdown; !drain: it is gone now, forget it.
struct Deregister {
  reason @0 :Text;
  drain @1 :Bool;
}

struct Envelope {
  version @0 :UInt16;
  type @1 :MessageType;          # must name the payload union member
  sender @2 :UInt32;
  epoch @3 :UInt64;
  payload :union {
    none @4 :Void;
    registerWorker @5 :RegisterWorker;
    registerAck @6 :RegisterAck;
    registerLearner @7 :RegisterLearner;
    heartbeat @8 :Heartbeat;
    segmentTaskBatch @9 :SegmentTaskBatch;
    segmentResultBatch @10 :SegmentResultBatch;
    taskRejected @11 :TaskRejected;
    releaseNodes @12 :ReleaseNodes;
    weightVersionNotice @13 :WeightVersionNotice;
    weightChunk @14 :WeightChunk;
    weightAck @15 :WeightAck;
    treeBatch @16 :TreeBatch;
    trainDone @17 :TrainDone;
    shutdown @18 :Shutdown;
    errorReply @19 :ErrorReply;
    kvMigrate @20 :KvMigrate;
    kvChunk @21 :KvChunk;
    kvMigrated @22 :KvMigrated;
    deregister @23 :Deregister;
  }
}
