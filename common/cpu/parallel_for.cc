#include "common/cpu/parallel_for.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace treepo::cpu {
namespace {

std::atomic<int> g_threads{0};  // 0: not set, use the hardware threads

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : helpers_) t.join();
  }

  void Run(int n, int threads, const std::function<void(int)>& fn) {
    while (static_cast<int>(helpers_.size()) < threads - 1) {
      helpers_.emplace_back([this] { HelperLoop(); });
    }
    const int helpers = std::min(threads - 1, n - 1);
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      running_ = helpers;
      active_helpers_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    Work();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return running_ == 0; });
    fn_ = nullptr;
  }

 private:
  void Work() {
    for (int i = next_.fetch_add(1); i < n_; i = next_.fetch_add(1)) (*fn_)(i);
  }

  void HelperLoop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || (generation_ != seen && active_helpers_ > 0); });
        if (stop_) return;
        seen = generation_;
        --active_helpers_;
      }
      Work();
      {
        std::lock_guard<std::mutex> lock(mu_);
        --running_;
      }
      done_.notify_one();
    }
  }

  std::vector<std::thread> helpers_;
  // mu_ guards the call's description (fn_, n_, generation_) and the counters below.
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_ = 0;
  std::atomic<int> next_{0};
  int running_ = 0;         // helpers of this call that have not finished
  int active_helpers_ = 0;  // helpers this call still wants to pick it up
  uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace

void SetCpuThreads(int n) { g_threads.store(std::max(n, 0)); }

int CpuThreads() {
  const int n = g_threads.load();
  if (n > 0) return n;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

void ParallelFor(int n, const std::function<void(int)>& fn) {
  const int threads = std::min(CpuThreads(), n);
  if (threads <= 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  thread_local Pool pool;
  pool.Run(n, threads, fn);
}

}  // namespace treepo::cpu
