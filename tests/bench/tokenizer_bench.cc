// tokenizer_bench: encode time of the llama2.c tokenizer, the merge-queue encoder
// (Tokenizer::Encode) against llama2.c's own quadratic loop (the test reference), on one line
// of text of 1 KB, 68 KB, 1 MB and 10 MB, with decode time of the result.
//
// The text is stories260K-style prose with unicode, whitespace runs and invalid UTF-8 mixed in
// (RandomText, the same generator the equality tests use), encoded with stories260K's tok512.
// The old loop runs only up to --old-max-bytes (it needs about a minute for 68 KB and hours for
// a megabyte); the table says where it did not run. Both encoders' outputs are compared where
// both ran.
//
// Times are the thread's CPU time (the machine may be shared), best of --reps up to 1 MB.
//
// Usage: tokenizer_bench [--json FILE] [--shared DIR] [--old-max-bytes N] [--reps N (best of)]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/model/tokenizer.h"
#include "common/model/tokenizer_test_util.h"

namespace {

using treepo::model::Tokenizer;
// This thread's CPU time in seconds: the encoders are single-threaded, and CPU time stays
// meaningful on a machine shared with other work (wall time does not).
double CpuNow() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

double Seconds(double since) { return CpuNow() - since; }

std::string Format(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, value);
  return buf;
}

struct Options {
  std::string json_path;
  std::string shared = "../shared";
  size_t old_max_bytes = 70000;
  int reps = 3;
};

bool Parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", a.c_str());
      return false;
    }
    const char* v = argv[++i];
    if (a == "--json") {
      o->json_path = v;
    } else if (a == "--shared") {
      o->shared = v;
    } else if (a == "--old-max-bytes") {
      o->old_max_bytes = std::strtoull(v, nullptr, 10);
    } else if (a == "--reps") {
      o->reps = std::max(1, std::atoi(v));
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const char* s = std::getenv("TREEPO_SHARED_DIR")) o.shared = s;
  if (!Parse(argc, argv, &o)) return 2;
  const std::string tok_path = o.shared + "/models/stories260K/tok512.bin";
  auto tok = Tokenizer::LoadLlama2c(tok_path, 512);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().ToString().c_str());
    return 1;
  }
  const treepo::model::testing::ReferenceEncoder old_encoder(*tok);
  std::mt19937_64 rng(1);
  const std::string text = treepo::model::testing::RandomText(*tok, rng, 10u << 20);

  struct Size {
    const char* name;
    size_t bytes;
  };
  const Size sizes[] = {
      {"1 KB", 1u << 10}, {"68 KB", 68u << 10}, {"1 MB", 1u << 20}, {"10 MB", 10u << 20}};
  std::printf(
      "tokenizer_bench: stories260K tok512, one line of mixed text, CPU seconds, best of %d\n\n",
      o.reps);
  std::printf(
      "| input | tokens | old encode s | old MB/s | new encode s | new MB/s | speed-up | "
      "decode MB/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  nlohmann::json rows = nlohmann::json::array();
  bool all_equal = true;
  for (const Size& size : sizes) {
    const std::string_view input(text.data(), size.bytes);
    const double mb = static_cast<double>(size.bytes) / (1 << 20);
    double new_s = 1e30, decode_s = 1e30;
    std::vector<int32_t> tokens;
    const int reps = size.bytes > (1u << 20) ? 1 : o.reps;
    for (int r = 0; r < reps; ++r) {
      const double t0 = CpuNow();
      tokens = tok->Encode(input, /*add_bos=*/true);
      new_s = std::min(new_s, Seconds(t0));
      const double t1 = CpuNow();
      const std::string back = tok->Decode({tokens.begin() + 1, tokens.end()}, tokens[0]);
      decode_s = std::min(decode_s, Seconds(t1));
      if (back != input) all_equal = false;
    }
    nlohmann::json row = {{"input", size.name},         {"bytes", size.bytes},
                          {"tokens", tokens.size()},    {"new_encode_s", new_s},
                          {"new_mb_per_s", mb / new_s}, {"decode_mb_per_s", mb / decode_s}};
    std::string old_s_cell = "not run", old_rate_cell = "-", speedup_cell = "-";
    if (size.bytes <= o.old_max_bytes) {
      const double t0 = CpuNow();
      const std::vector<int32_t> want = old_encoder.Encode(input, /*add_bos=*/true);
      const double old_s = Seconds(t0);
      if (want != tokens) all_equal = false;
      old_s_cell = Format("%.4g", old_s);
      old_rate_cell = Format("%.3g", mb / old_s);
      speedup_cell = Format("%.0fx", old_s / new_s);
      row["old_encode_s"] = old_s;
      row["old_mb_per_s"] = mb / old_s;
    }
    std::printf("| %s | %zu | %s | %s | %.4g | %.3g | %s | %.3g |\n", size.name, tokens.size(),
                old_s_cell.c_str(), old_rate_cell.c_str(), new_s, mb / new_s, speedup_cell.c_str(),
                mb / decode_s);
    rows.push_back(row);
  }
  std::printf(
      "\nold = llama2.c's loop (not run above %zu bytes: quadratic); new = merge queue. "
      "Outputs %s; decode round-trips %s.\n",
      o.old_max_bytes, all_equal ? "identical" : "DIFFER",
      all_equal ? "exactly" : "with DIFFERENCES");
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << nlohmann::json{{"rows", rows}, {"identical", all_equal}}.dump(2) << "\n";
  }
  return all_equal ? 0 : 1;
}
