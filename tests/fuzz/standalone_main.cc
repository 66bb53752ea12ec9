// A main() for a libFuzzer target when libFuzzer is not there (gcc, the release preset):
// runs every file of the corpus directories given, then random mutations of them (bit
// flips, byte changes, cuts, insertions, duplicated and spliced ranges) until --seconds or
// --runs is reached. A crash ends the process as it would under libFuzzer; the input is
// written first to ./standalone-crash-input for replay.
//
//   TARGET [--seconds S] [--runs N] [--seed X] CORPUS_DIR_OR_FILE...
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Kept on disk before each run so that a crash leaves its input behind.
void Keep(const std::vector<uint8_t>& input) {
  std::ofstream out("standalone-crash-input", std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(input.data()),
            static_cast<std::streamsize>(input.size()));
}

void Run(const std::vector<uint8_t>& input) {
  Keep(input);
  LLVMFuzzerTestOneInput(input.data(), input.size());
}

std::vector<uint8_t> Mutate(std::vector<uint8_t> x, const std::vector<std::vector<uint8_t>>& corpus,
                            std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  const int steps = 1 + static_cast<int>(rng() % 4);
  for (int s = 0; s < steps; ++s) {
    switch (rng() % 7) {
      case 0:  // flip a bit
        if (!x.empty()) x[pick(x.size())] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1:  // set a byte to an interesting value
        if (!x.empty()) {
          static const uint8_t kVals[] = {0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x40};
          x[pick(x.size())] = kVals[rng() % sizeof(kVals)];
        }
        break;
      case 2: {  // cut a range
        if (x.empty()) break;
        const size_t a = pick(x.size()), n = 1 + pick(std::min<size_t>(x.size() - a, 64));
        x.erase(x.begin() + a, x.begin() + a + n);
        break;
      }
      case 3: {  // insert random bytes
        const size_t a = pick(x.size() + 1), n = 1 + pick(16);
        std::vector<uint8_t> r(n);
        for (uint8_t& b : r) b = static_cast<uint8_t>(rng());
        x.insert(x.begin() + a, r.begin(), r.end());
        break;
      }
      case 4: {  // duplicate a range
        if (x.empty()) break;
        const size_t a = pick(x.size()), n = 1 + pick(std::min<size_t>(x.size() - a, 64));
        std::vector<uint8_t> r(x.begin() + a, x.begin() + a + n);
        x.insert(x.begin() + pick(x.size() + 1), r.begin(), r.end());
        break;
      }
      case 5: {  // splice in a range of another corpus entry
        if (corpus.empty()) break;
        const std::vector<uint8_t>& o = corpus[pick(corpus.size())];
        if (o.empty()) break;
        const size_t a = pick(o.size()), n = 1 + pick(o.size() - a);
        x.insert(x.begin() + pick(x.size() + 1), o.begin() + a, o.begin() + a + n);
        break;
      }
      default:  // a random 32-bit value somewhere
        if (x.size() >= 4) {
          const size_t a = pick(x.size() - 3);
          const uint32_t v = static_cast<uint32_t>(rng());
          for (int i = 0; i < 4; ++i) x[a + i] = static_cast<uint8_t>(v >> (8 * i));
        }
        break;
    }
  }
  if (x.size() > 8192) x.resize(8192);
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 20;
  int64_t runs = 1000000;
  uint64_t seed = 1;
  std::vector<std::vector<uint8_t>> corpus;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::atoll(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (fs::is_directory(a)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(a)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      for (const fs::path& f : files) corpus.push_back(ReadFile(f));
    } else if (fs::is_regular_file(a)) {
      corpus.push_back(ReadFile(a));
    } else {
      std::cerr << "not a corpus directory or file: " << a << "\n";
      return 2;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  int64_t done = 0;
  for (const auto& c : corpus) {
    Run(c);
    ++done;
  }
  const int64_t corpus_runs = done;
  std::mt19937_64 rng(seed);
  while (done < runs && elapsed() < seconds) {
    std::vector<uint8_t> base =
        corpus.empty() ? std::vector<uint8_t>() : corpus[rng() % corpus.size()];
    Run(Mutate(std::move(base), corpus, rng));
    ++done;
  }
  std::remove("standalone-crash-input");
  std::printf("%lld corpus inputs and %lld mutations in %.1f s (%.0f runs/s), no crash\n",
              static_cast<long long>(corpus_runs), static_cast<long long>(done - corpus_runs),
              elapsed(), static_cast<double>(done) / std::max(elapsed(), 1e-9));
  return 0;
}
