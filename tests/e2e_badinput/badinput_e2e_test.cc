// Bad inputs end to end: runs the real `treepo` binary ($TREEPO_BINARY_DIR/cluster/treepo)
// over a table of bad inputs (directories for files, non-UTF-8 text, out-of-range numbers,
// sizes that cannot fit in memory, sampling parameters out of range, unwritable outputs) and
// checks for each: exit code 1 (2 for a usage error), so no signal and no abort; a message on
// stderr naming the problem; no output file, whole or partial. A second test stops a rollout
// with SIGTERM and checks that the trees it finished are kept. Needs the stories260K model
// ($TREEPO_SHARED_DIR).
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cluster/child_process.h"
#include "common/model/safetensors.h"
#include "common/model/weights.h"
#include "common/testing/paths.h"
#include "common/tree/tree_record.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Splits on spaces; "{name}" placeholders are replaced from `vars` first.
std::vector<std::string> Args(std::string line, const std::map<std::string, std::string>& vars) {
  for (const auto& [k, v] : vars) {
    for (size_t at; (at = line.find("{" + k + "}")) != std::string::npos;) {
      line.replace(at, k.size() + 2, v);
    }
  }
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string a; in >> a;) out.push_back(a);
  return out;
}

struct BadInput {
  const char* name;
  const char* args;    // after the binary; placeholders {dir} {model} {tok} {prompts}
  int exit_code;       // 1, or 2 for a usage error
  const char* needle;  // must appear in stderr
  // Output paths (relative to {dir}) that must not exist afterwards, whole or partial.
  std::vector<const char*> no_outputs = {};
};

const std::vector<BadInput>& Table() {
  static const std::vector<BadInput> table = {
      // A directory where a file belongs.
      {"tokenizer_is_dir", "generate --model {model} --tokenizer {dir}/adir --prompt hi", 1,
       "is a directory"},
      {"prompts_is_dir",
       "rollout --model {model} --tokenizer {tok} --prompts {dir}/adir --out {dir}/o.jsonl",
       1,
       "is a directory",
       {"o.jsonl"}},
      {"config_json_is_dir", "generate --model {dir}/hf_cfgdir --tokenizer {tok}", 1,
       "is a directory"},
      {"safetensors_is_dir", "generate --model {dir}/hf_stdir --tokenizer {tok}", 1,
       "is a directory"},
      {"score_input_is_dir", "score --input {dir}/adir", 1, "is a directory"},
      {"advantages_trees_is_dir", "advantages --trees {dir}/adir", 1, "is a directory"},
      {"rollout_config_is_dir", "rollout --config {dir}/adir --model {model}", 1, "is a directory"},
      // Sizes that cannot fit.
      {"huge_model_config", "generate --model {dir}/hf_huge --tokenizer {tok}", 1,
       "TREEPO_MEMORY_LIMIT_BYTES"},
      {"worker_huge_kv_pool",
       "worker --scheduler tcp://127.0.0.1:9 --model {model} --pages 16777216", 1, "KV pool"},
      {"rollout_huge_kv_pool",
       "rollout --model {model} --tokenizer {tok} --prompts {prompts} --worker-pages 16777216", 1,
       "KV pool"},
      {"rollout_huge_width",
       "rollout --model {model} --tokenizer {tok} --prompts {prompts} "
       "--out {dir}/o.jsonl --set width=1000000000",
       1,
       "width (w) must be in",
       {"o.jsonl"}},
      // Sampling parameters out of range.
      {"temperature_negative",
       "rollout --model {model} --tokenizer {tok} --prompts {prompts} --temperature=-1", 1,
       "temperature must be"},
      {"temperature_nan",
       "rollout --model {model} --tokenizer {tok} --prompts {prompts} --set temperature=nan", 1,
       "temperature must be"},
      {"temperature_inf",
       "rollout --model {model} --tokenizer {tok} --prompts {prompts} --set temperature=inf", 1,
       "temperature must be"},
      {"top_p_zero", "rollout --model {model} --tokenizer {tok} --prompts {prompts} --top-p 0", 1,
       "top_p must be in (0, 1]"},
      {"top_p_above_one",
       "rollout --model {model} --tokenizer {tok} --prompts {prompts} --top-p 1.5", 1,
       "top_p must be in (0, 1]"},
      {"top_p_nan", "rollout --model {model} --tokenizer {tok} --prompts {prompts} --set top_p=nan",
       1, "top_p must be in (0, 1]"},
      {"top_k_negative",
       "rollout --model {model} --tokenizer {tok} --prompts {prompts} --set top_k=-3", 1,
       "top_k must be >= 0"},
      {"generate_temperature_nan",
       "generate --model {model} --tokenizer {tok} --prompt hi --temperature nan", 1,
       "temperature must be"},
      {"eval_temperature_inf",
       "eval --model {model} --tokenizer {tok} --prompts {prompts} --samples 1 --temperature inf",
       1, "temperature must be"},
      // Outputs checked before the work.
      {"rollout_out_is_dir",
       "rollout --model {model} --tokenizer {tok} --prompts {prompts} --out {dir}/adir", 1,
       "is a directory"},
      {"rollout_summary_impossible",
       "rollout --model {model} --tokenizer {tok} --prompts {prompts} --out {dir}/o.jsonl "
       "--summary-out {dir}/afile/summary.json",
       1,
       "summary file",
       {"o.jsonl", "afile/summary.json"}},
      {"eval_out_is_dir",
       "eval --model {model} --tokenizer {tok} --prompts {prompts} --out {dir}/adir "
       "--responses-out {dir}/responses.jsonl",
       1,
       "is a directory",
       {"responses.jsonl"}},
      {"pretrain_out_impossible", "pretrain --out {dir}/afile/model --steps 1", 1, "cannot create"},
      {"grad_out_is_dir", "grad --model {model} --tokens-file {dir}/tokens.txt --out {dir}/adir", 1,
       "is a directory"},
      {"grad_tokens_and_trees",
       "grad --model {model} --tokens-file {dir}/tokens.txt --trees {dir}/big_id.jsonl "
       "--out {dir}/g.safetensors",
       1,
       "exactly one of --tokens-file and --trees",
       {"g.safetensors"}},
      {"grad_trees_bad_node_id",
       "grad --model {model} --trees {dir}/big_id.jsonl --out {dir}/g.st",
       1,
       "is outside",
       {"g.st"}},
      {"train_plugin_missing", "train --set plugins={dir}/libnope.so --set out_dir={dir}/run", 1,
       "libnope.so: no such file"},
      {"score_plugin_not_a_library", "score --input {dir}/big_tokens.jsonl --plugin {dir}/adir", 1,
       "not a regular file"},
      // Bytes and numbers.
      {"prompts_not_utf8", "rollout --model {model} --tokenizer {tok} --prompts {dir}/latin1.jsonl",
       1, "not valid UTF-8"},
      {"score_not_utf8", "score --input {dir}/latin1_score.jsonl", 1, "not valid UTF-8"},
      {"score_tokens_1e12", "score --input {dir}/big_tokens.jsonl", 1,
       "\"response_tokens\": 1000000000000.0 is outside"},
      {"tree_node_id_past_2_64", "advantages --trees {dir}/big_id.jsonl", 1, "is outside"},
      {"tree_depth_1e12", "advantages --trees {dir}/big_depth.jsonl", 1,
       "1000000000000 is outside"},
      {"config_fewer_layers_than_weights", "generate --model {dir}/hf_layers --tokenizer {tok}", 1,
       "but the weights hold 3 layers"},
      // Compute backends.
      {"train_backend_unknown", "train --set cluster.worker_backend=tpu --set out_dir={dir}/run", 1,
       "cluster.worker_backend must be cpu, cuda or auto"},
      {"rollout_backend_unknown",
       "rollout --model {model} --tokenizer {tok} --prompts {prompts} --set worker_backend=tpu", 1,
       "unknown backend 'tpu'"},
      {"worker_backend_unknown",
       "worker --scheduler tcp://127.0.0.1:9 --model {model} --backend tpu", 1,
       "unknown backend 'tpu'"},
      // Usage.
      {"unknown_flag", "rollout --no-such-flag", 2, "no-such-flag"},
  };
  return table;
}

model::ModelConfig TinyConfig(int layers) {
  model::ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 40;
  c.n_layers = layers;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 512;
  c.max_seq_len = 64;
  return c;
}

TreeRecord SampleTree() {
  TreeRecord t;
  t.query_id = "q1";
  t.prompt = "1+1=";
  t.answer = "2";
  t.prompt_tokens = {1, 5};
  t.nodes = {{10, std::nullopt, 1, {3, 4}, {-0.5f, -0.25f}, "ab", FinishReason::kEos, 1, 0}};
  t.leaves = {{10, 1.0f, FinishReason::kEos, 2}};
  return t;
}

class BadInputE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = testing::TreepoBinary();
    const fs::path shared = testing::SharedDir();
    model_ = (shared / "models/stories260K/stories260K.bin").string();
    tok_ = (shared / "models/stories260K/tok512.bin").string();
    if (!fs::exists(binary_)) GTEST_SKIP() << "no treepo binary at " << binary_;
    if (!fs::exists(model_)) GTEST_SKIP() << "needs " << model_;
    dir_ = testing::FreshTempDir(std::string("badinput_e2e_") +
                                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    // A fixed memory cap, so that the estimates refuse the same inputs on every machine.
    ::setenv("TREEPO_MEMORY_LIMIT_BYTES", "8589934592", 1);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  void MakeInputs() {
    fs::create_directories(Path("adir"));
    WriteAll(Path("afile"), "a regular file\n");
    std::string prompts;
    for (int i = 0; i < 3; ++i) {
      prompts += "{\"id\": \"q" + std::to_string(i) + "\", \"prompt\": \"Once upon a time\"}\n";
    }
    WriteAll(Path("prompts.jsonl"), prompts);
    WriteAll(Path("latin1.jsonl"), "{\"prompt\": \"caf\xe9\"}\n");
    WriteAll(Path("latin1_score.jsonl"), "{\"response\": \"caf\xe9\", \"answer\": \"1\"}\n");
    WriteAll(Path("big_tokens.jsonl"),
             "{\"response\": \"\\\\boxed{1}\", \"answer\": \"1\", \"response_tokens\": 1e12}\n");
    WriteAll(Path("tokens.txt"), "1 2 3 4\n");
    const std::string tree = TreeRecordToJson(SampleTree());
    auto edit = [&](const std::string& from, const std::string& to) {
      std::string s = tree;
      s.replace(s.find(from), from.size(), to);
      return s + "\n";
    };
    WriteAll(Path("big_id.jsonl"), edit("\"id\":10", "\"id\":18446744073709551621"));
    WriteAll(Path("big_depth.jsonl"), edit("\"depth\":1", "\"depth\":1000000000000"));

    auto weights = model::ModelWeights::Random(TinyConfig(3), 7);
    ASSERT_TRUE(weights.ok());
    for (const char* d : {"hf_cfgdir", "hf_stdir", "hf_layers"}) {
      ASSERT_TRUE(model::SaveHfModel(*weights, Path(d)).ok());
    }
    fs::remove(Path("hf_cfgdir/config.json"));
    fs::create_directories(Path("hf_cfgdir/config.json"));
    fs::remove(Path("hf_stdir/model.safetensors"));
    fs::create_directories(Path("hf_stdir/model.safetensors"));
    std::string cfg = ReadAll(Path("hf_layers/config.json"));
    const std::string key = "\"num_hidden_layers\": 3";
    ASSERT_NE(cfg.find(key), std::string::npos) << cfg;
    cfg.replace(cfg.find(key), key.size(), "\"num_hidden_layers\": 2");
    WriteAll(Path("hf_layers/config.json"), cfg);
    fs::create_directories(Path("hf_huge"));
    WriteAll(Path("hf_huge/config.json"),
             R"({"hidden_size": 65536, "intermediate_size": 262144, "num_hidden_layers": 1024,
                 "num_attention_heads": 64, "vocab_size": 4194304})");
  }

  std::map<std::string, std::string> Vars() const {
    return {{"dir", dir_}, {"model", model_}, {"tok", tok_}, {"prompts", Path("prompts.jsonl")}};
  }

  std::string binary_, model_, tok_, dir_;
};

TEST_F(BadInputE2eTest, EveryBadInputIsOneClearErrorNeverASignal) {
  MakeInputs();
  for (const BadInput& c : Table()) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> argv = {binary_};
    for (std::string& a : Args(c.args, Vars())) argv.push_back(std::move(a));
    const std::string log = Path(std::string(c.name) + ".log");
    auto proc = cluster::ChildProcess::Spawn(argv, log);
    ASSERT_TRUE(proc.ok()) << proc.status().ToString();
    ASSERT_TRUE(proc->Wait(60000)) << c.name << " still running after 60 s";
    const std::string err = ReadAll(log);
    EXPECT_LT(proc->exit_code(), 128) << c.name << " ended with a signal:\n" << err;
    EXPECT_EQ(proc->exit_code(), c.exit_code) << c.args << "\n" << err;
    EXPECT_NE(err.find(c.needle), std::string::npos)
        << c.name << ": stderr does not say \"" << c.needle << "\":\n"
        << err;
    EXPECT_EQ(err.find("terminate called"), std::string::npos) << err;
    for (const char* out : c.no_outputs) {
      EXPECT_FALSE(fs::exists(Path(out))) << out;
      EXPECT_FALSE(fs::exists(Path(std::string(out) + ".partial"))) << out;
    }
  }
  // No temporary file of an atomic write is left anywhere.
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".tmp."), std::string::npos) << e.path();
    EXPECT_EQ(name.find(".partial"), std::string::npos) << e.path();
  }
}

// SIGTERM during `treepo rollout`: the run stops within seconds, keeps every tree it finished
// in --out (each whole), leaves no .partial file, and says how many it kept.
TEST_F(BadInputE2eTest, SigtermDuringRolloutKeepsFinishedTrees) {
  std::string prompts;
  for (int i = 0; i < 1000; ++i) {
    prompts += "{\"id\": \"q" + std::to_string(i) + "\", \"prompt\": \"Once upon a time\"}\n";
  }
  WriteAll(Path("many.jsonl"), prompts);
  const std::string out = Path("trees.jsonl");
  const std::vector<std::string> argv = {binary_,
                                         "rollout",
                                         "--model",
                                         model_,
                                         "--tokenizer",
                                         tok_,
                                         "--prompts",
                                         Path("many.jsonl"),
                                         "--out",
                                         out,
                                         "--workers",
                                         "1",
                                         "--width",
                                         "4",
                                         "--branch",
                                         "2",
                                         "--segment-tokens",
                                         "16",
                                         "--max-depth",
                                         "3",
                                         "--max-concurrent-queries",
                                         "2",
                                         "--set",
                                         "progress=false"};
  auto proc = cluster::ChildProcess::Spawn(argv, Path("rollout.log"));
  ASSERT_TRUE(proc.ok()) << proc.status().ToString();
  // Wait (bounded) for the first streamed tree: a whole line in the .partial file.
  bool streamed = false;
  for (int i = 0; i < 6000; ++i) {
    streamed = ReadAll(out + ".partial").find('\n') != std::string::npos;
    if (streamed || proc->Wait(10)) break;  // Wait returns true when the rollout ended early
  }
  ASSERT_TRUE(streamed) << "no tree streamed within 60 s:\n" << ReadAll(Path("rollout.log"));
  proc->Signal(SIGTERM);
  ASSERT_TRUE(proc->Wait(30000)) << "rollout did not stop within 30 s of SIGTERM";
  const std::string log = ReadAll(Path("rollout.log"));
  EXPECT_EQ(proc->exit_code(), 1) << log;
  EXPECT_NE(log.find("finished trees (of 1000) are in " + out), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(out + ".partial"));
  auto trees = ReadTreeFile(out);
  ASSERT_TRUE(trees.ok()) << trees.status().ToString();
  EXPECT_GE(trees->size(), 1u);
  EXPECT_LT(trees->size(), 1000u);
  for (const TreeRecord& t : *trees) EXPECT_EQ(t.leaves.size(), 4u) << t.query_id;
}

}  // namespace
}  // namespace treepo
