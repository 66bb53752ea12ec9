#include "scheduler/rl/weight_relay.h"

#include <utility>

#include "common/log.h"

namespace treepo::scheduler {

namespace pr = protocols;

void WeightRelay::OnLearnerRegistered(const LearnerEntry& learner) {
  if (learner.world_size != static_cast<uint32_t>(expected_learners_)) {
    if (error_.ok()) {
      error_ = InvalidArgument("learner '" + learner.name + "' registered with world size " +
                               std::to_string(learner.world_size) + ", but this run has " +
                               std::to_string(expected_learners_) + " learner rank(s)");
    }
    return;
  }
  auto it = learners_.find(learner.rank);
  if (it != learners_.end() && it->second != learner.id) {
    spdlog::warn("learner {} replaces learner {} (rank {})", learner.id.value(), it->second.value(),
                 learner.rank);
  }
  learners_[learner.rank] = learner.id;
  if (learner.rank == 0) assembling_.reset();
}

std::optional<LearnerId> WeightRelay::learner() const {
  auto it = learners_.find(0);
  if (it == learners_.end()) return std::nullopt;
  return it->second;
}

std::vector<LearnerId> WeightRelay::learners() const {
  if (learners_.size() != static_cast<size_t>(expected_learners_)) return {};
  std::vector<LearnerId> out;
  for (const auto& [rank, id] : learners_) out.push_back(id);
  return out;
}

void WeightRelay::OnLearnerMessage(const LearnerEntry& learner, const pr::Message& m) {
  auto it = learners_.find(learner.rank);
  if (it == learners_.end() || it->second != learner.id) return;  // a replaced learner
  if (const auto* err = m.get_if<pr::ErrorReply>()) {
    if (error_.ok()) {
      error_ = Status(
          err->code,
          "learner" +
              (expected_learners_ > 1 ? " rank " + std::to_string(learner.rank) : std::string()) +
              ": " + err->message);
    }
    return;
  }
  if (learner.rank != 0) {
    spdlog::warn("ignoring {} from learner rank {}: rank 0 publishes and reports",
                 pr::MessageTypeName(m.type()), learner.rank);
    return;
  }
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
