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
      const WeightVersion v = assembling_->notice.version;
      if (awaiting_restart_ && !restart_version_) restart_version_ = v;
      if (auto old = complete_.find(v);
          old != complete_.end() && old->second.notice.checksum != assembling_->notice.checksum) {
        // A restarted learner trained a step again to other weights than its predecessor's:
        // workers that had the old ones get the new ones (and the gates wait for their acks).
        spdlog::warn("learner republished weight version {} with other weights: resending it",
                     v.value());
        for (auto* m : {&sent_, &acked_}) {
          for (auto it = m->begin(); it != m->end();) {
            it = it->second >= v ? m->erase(it) : std::next(it);
          }
        }
      }
      complete_[v] = std::move(*assembling_);
      assembling_.reset();
      Prune();
    }
  } else if (const auto* done = m.get_if<pr::TrainDone>()) {
    train_done_[done->step] = *done;
  } else {
    spdlog::warn("ignoring {} from learner {}", pr::MessageTypeName(m.type()), learner.id.value());
  }
}

void WeightRelay::OnLearnerLost(const LearnerEntry& learner, const std::string& why) {
  auto it = learners_.find(learner.rank);
  if (it == learners_.end() || it->second != learner.id) return;  // not a current one
  if (learner.rank == 0) assembling_.reset();
  if (!lost_) {
    lost_ = "learner " + std::to_string(learner.id.value()) + " '" + learner.name + "'" +
            (expected_learners_ > 1 ? " (rank " + std::to_string(learner.rank) + ")" : "") + " " +
            why;
  }
}

std::optional<std::string> WeightRelay::TakeLearnerLost() { return std::exchange(lost_, {}); }

void WeightRelay::ExpectRestart() {
  learners_.clear();
  assembling_.reset();
  awaiting_restart_ = true;
  restart_version_.reset();
  lost_.reset();
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

void WeightRelay::Prune() {
  const WeightVersion current = service_->weight_version();
  const WeightVersion newest = complete_.rbegin()->first;
  for (auto it = complete_.begin(); it != complete_.end();) {
    it = it->first != newest && it->first != current ? complete_.erase(it) : std::next(it);
  }
}

void WeightRelay::SendVersion(WorkerId worker, const Version& version) {
  Status st = service_->SendToWorker(worker, version.notice);
  for (const pr::WeightChunk& c : version.chunks) {
    if (st.ok()) st = service_->SendToWorker(worker, c);
  }
  // A failed send leaves sent_ unchanged: the next SyncWorkers retries.
  if (st.ok()) sent_[worker] = std::max(sent_[worker], version.notice.version);
}

void WeightRelay::OnWorkerRegistered(const WorkerEntry& worker) {
  // What it runs now (0: its model file's weights, which are not trusted to be the run's).
  if (worker.weight_version.value() != 0) acked_[worker.id] = worker.weight_version;
  auto it = complete_.find(service_->weight_version());
  if (it == complete_.end()) return;  // before the learner's first weights: SyncWorkers
  if (worker.weight_version.value() != 0 && worker.weight_version == it->first) return;
  spdlog::info("worker {} '{}' joined on weight version {}: sending it version {}",
               worker.id.value(), worker.name, worker.weight_version.value(), it->first.value());
  SendVersion(worker.id, it->second);
}

void WeightRelay::SyncWorkers() {
  if (complete_.empty()) return;
  Prune();
  const Version& newest = complete_.rbegin()->second;
  for (WorkerId w : service_->registry().LiveWorkers()) {
    auto it = sent_.find(w);
    if (it == sent_.end() || it->second < newest.notice.version) SendVersion(w, newest);
  }
}

std::optional<WeightVersion> WeightRelay::newest() const {
  if (complete_.empty()) return std::nullopt;
  return complete_.rbegin()->first;
}

std::vector<WorkerId> WeightRelay::ServingWorkers() const {
  std::vector<WorkerId> out;
  for (WorkerId w : service_->registry().LiveWorkers()) {
    const WorkerEntry* e = service_->registry().Find(w);
    if (!e->draining) out.push_back(w);
  }
  return out;
}

std::optional<WeightVersion> WeightRelay::MinWorkerVersion() const {
  std::optional<WeightVersion> low;
  for (WorkerId w : ServingWorkers()) {
    auto it = acked_.find(w);
    if (it == acked_.end()) return std::nullopt;
    if (!low || it->second < *low) low = it->second;
  }
  return low;
}

bool WeightRelay::AllWorkersAtLeast(WeightVersion version) const {
  if (ServingWorkers().empty()) return false;
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
