#include "scheduler/rl/weight_relay.h"

#include <utility>

#include "common/log.h"

namespace treepo::scheduler {

namespace pr = protocols;

void WeightRelay::OnLearnerRegistered(const LearnerEntry& learner) {
  if (learner_ && *learner_ != learner.id) {
    spdlog::warn("learner {} replaces learner {}", learner.id.value(), learner_->value());
  }
  learner_ = learner.id;
  assembling_.reset();
}

void WeightRelay::OnLearnerMessage(const LearnerEntry& learner, const pr::Message& m) {
  if (learner_ != learner.id) return;  // a replaced learner
  if (const auto* notice = m.get_if<pr::WeightVersionNotice>()) {
    assembling_ = Version{*notice, {}};
  } else if (const auto* chunk = m.get_if<pr::WeightChunk>()) {
    if (!assembling_ || assembling_->notice.version != chunk->version ||
        chunk->chunk_index != assembling_->chunks.size() ||
        chunk->n_chunks != assembling_->notice.n_chunks) {
      if (error_.ok()) {
        error_ =
            DataLoss("learner sent weight chunk " + std::to_string(chunk->chunk_index) +
                     " of version " + std::to_string(chunk->version.value()) + " out of order");
      }
      return;
    }
    assembling_->chunks.push_back(*chunk);
    if (assembling_->chunks.size() == assembling_->notice.n_chunks) {
      newest_ = std::move(*assembling_);
      assembling_.reset();
    }
  } else if (const auto* done = m.get_if<pr::TrainDone>()) {
    train_done_[done->step] = *done;
  } else if (const auto* err = m.get_if<pr::ErrorReply>()) {
    if (error_.ok()) error_ = Status(err->code, "learner: " + err->message);
  } else {
    spdlog::warn("ignoring {} from learner {}", pr::MessageTypeName(m.type()), learner.id.value());
  }
}

void WeightRelay::OnWorkerWeightAck(WorkerId worker, const pr::WeightAck& ack) {
  if (!ack.ok) {
    if (error_.ok()) {
      error_ = Internal("worker " + std::to_string(worker.value()) + " refused weight version " +
                        std::to_string(ack.version.value()) + ": " + ack.message);
    }
    return;
  }
  acked_[worker] = ack.version;
}

void WeightRelay::SendVersion(WorkerId worker) {
  Status st = service_->SendToWorker(worker, newest_->notice);
  for (const pr::WeightChunk& c : newest_->chunks) {
    if (st.ok()) st = service_->SendToWorker(worker, c);
  }
  // A failed send leaves sent_ unchanged: the next SyncWorkers retries.
  if (st.ok()) sent_[worker] = newest_->notice.version;
}

void WeightRelay::SyncWorkers() {
  if (!newest_) return;
  for (WorkerId w : service_->registry().LiveWorkers()) {
    auto it = sent_.find(w);
    if (it == sent_.end() || it->second < newest_->notice.version) SendVersion(w);
  }
}

std::optional<WeightVersion> WeightRelay::newest() const {
  if (!newest_) return std::nullopt;
  return newest_->notice.version;
}

std::optional<WeightVersion> WeightRelay::MinWorkerVersion() const {
  std::optional<WeightVersion> low;
  for (WorkerId w : service_->registry().LiveWorkers()) {
    auto it = acked_.find(w);
    if (it == acked_.end()) return std::nullopt;
    if (!low || it->second < *low) low = it->second;
  }
  return low;
}

bool WeightRelay::AllWorkersAtLeast(WeightVersion version) const {
  if (service_->registry().live_count() == 0) return false;
  const std::optional<WeightVersion> low = MinWorkerVersion();
  return low && *low >= version;
}

std::map<std::string, uint64_t> WeightRelay::WorkerVersions() const {
  std::map<std::string, uint64_t> out;
  for (WorkerId w : service_->registry().LiveWorkers()) {
    auto it = acked_.find(w);
    const WorkerEntry* e = service_->registry().Find(w);
    out[e->name + "#" + std::to_string(w.value())] = it == acked_.end() ? 0 : it->second.value();
  }
  return out;
}

std::optional<pr::TrainDone> WeightRelay::TakeTrainDone(uint64_t step) {
  auto it = train_done_.find(step);
  if (it == train_done_.end()) return std::nullopt;
  pr::TrainDone d = std::move(it->second);
  train_done_.erase(it);
  return d;
}

}  // namespace treepo::scheduler
