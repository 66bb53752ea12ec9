// Hands snapshots from the scheduler's loop thread to the HTTP thread: the loop publishes a
// new immutable snapshot, readers take the latest. A reader holds its snapshot as long as it
// likes; the loop never waits for readers beyond one pointer copy under the lock.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <memory>
#include <mutex>

#include "scheduler/dashboard/snapshot.h"

namespace treepo::scheduler::dashboard {

class SnapshotPublisher {
 public:
  void Publish(std::shared_ptr<const DashboardSnapshot> snapshot) {
    std::lock_guard<std::mutex> lock(mu_);
    latest_.swap(snapshot);
    // The previous snapshot (now in `snapshot`) is released after the lock is dropped.
  }
  // The newest snapshot; null before the first publication.
  std::shared_ptr<const DashboardSnapshot> Latest() const {
    std::lock_guard<std::mutex> lock(mu_);
    return latest_;
  }

 private:
  mutable std::mutex mu_;  // guards latest_ (a pointer copy or swap under it, nothing else)
  std::shared_ptr<const DashboardSnapshot> latest_;
};

}  // namespace treepo::scheduler::dashboard
