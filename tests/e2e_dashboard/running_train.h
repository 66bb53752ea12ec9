// A short `treepo train` running in the background with its dashboard on, for the dashboard's
// end-to-end tests: a tiny base model made by `treepo pretrain`, then `train` with 2 workers
// and enough steps to be watched for a while. Header-only; tests only.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "cluster/child_process.h"
#include "common/testing/paths.h"
#include "tests/e2e_chaos/e2e_util.h"

namespace treepo::testing {

class RunningTrain {
 public:
  // Makes the base model in `root` and starts `train` there; `steps` RL steps.
  // Returns "" on success, else what went wrong.
  std::string Start(const std::filesystem::path& root, int steps) {
    root_ = root;
    const std::string bin = TreepoBinary();
    if (!std::filesystem::exists(bin)) return "no treepo binary at " + bin;
    std::filesystem::create_directories(root);
    const std::string pretrain =
        bin + " pretrain --out " + (root / "base").string() +
        " --steps 20 --batch 8 --dim 32 --hidden 64 --layers 1 --heads 2 --kv-heads 2" +
        " --max-seq-len 128 --corpus 200 --eval-problems 0 --threads 1 > " +
        (root / "pretrain.log").string() + " 2>&1";
    if (std::system(pretrain.c_str()) != 0)
      return "pretrain failed: " + ReadAll((root / "pretrain.log").string());
    out_ = root / "run";
    std::vector<std::string> argv = {bin,     "train",
                                     "--set", "model.base=" + (root / "base").string(),
                                     "--set", "out_dir=" + out_.string(),
                                     "--set", "steps=" + std::to_string(steps),
                                     "--set", "rollout.queries_per_step=4",
                                     "--set", "rollout.width=4",
                                     "--set", "rollout.segment_tokens=8",
                                     "--set", "rollout.max_depth=3",
                                     "--set", "rollout.branch=2",
                                     "--set", "rollout.max_concurrent_queries=2",
                                     "--set", "task.train_problems=50",
                                     "--set", "eval.before=false",
                                     "--set", "eval.after=false",
                                     "--set", "eval.checkpoints=false",
                                     "--set", "output.report=false",
                                     "--set", "output.checkpoint_every=0",
                                     "--set", "output.progress=false",
                                     "--set", "cluster.worker_pages=256",
                                     "--set", "dashboard.bind=127.0.0.1:0"};
    auto child = cluster::ChildProcess::Spawn(argv, (root / "train.log").string());
    if (!child.ok()) return child.status().ToString();
    train_.emplace(std::move(*child));
    const std::string url_file = (out_ / "dashboard_url").string();
    if (!WaitFor([&] { return !ReadAll(url_file).empty() || !train_->Running(); }, 120000) ||
        ReadAll(url_file).empty()) {
      return "train wrote no dashboard_url: " + ReadAll((root / "train.log").string());
    }
    url_ = ReadAll(url_file);
    while (!url_.empty() && (url_.back() == '\n' || url_.back() == '\r')) url_.pop_back();
    return "";
  }

  ~RunningTrain() {
    if (train_) train_->Terminate(5000);
  }

  const std::string& url() const { return url_; }  // "http://127.0.0.1:PORT/"
  std::string log() const { return ReadAll((root_ / "train.log").string()); }
  bool running() { return train_ && train_->Running(); }

 private:
  std::filesystem::path root_, out_;
  std::optional<cluster::ChildProcess> train_;
  std::string url_;
};

}  // namespace treepo::testing
