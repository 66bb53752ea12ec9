#include "cluster/report.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cluster/eval_job.h"
#include "common/testing/paths.h"

namespace treepo::cluster {
namespace {

namespace fs = std::filesystem;

uint32_t U32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) |
         b[at + 3];
}

std::vector<uint8_t> ReadBytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string ReadText(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

fs::path TempDir(const std::string& name) {
  return ::treepo::testing::FreshTempDir("report_test_" + name);
}

TEST(EncodePngTest, SignatureIhdrAndStoredPixels) {
  RgbImage img{3, 2, std::vector<uint8_t>(18)};
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 13);
  const std::vector<uint8_t> png = EncodePng(img);
  const std::vector<uint8_t> sig = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  ASSERT_GT(png.size(), 33u);
  EXPECT_TRUE(std::equal(sig.begin(), sig.end(), png.begin()));
  EXPECT_EQ(U32(png, 8), 13u);
  EXPECT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  EXPECT_EQ(U32(png, 16), 3u);
  EXPECT_EQ(U32(png, 20), 2u);
  EXPECT_EQ(png[24], 8);  // bit depth
  EXPECT_EQ(png[25], 2);  // RGB
  // IDAT: zlib header, one final stored block holding both scanlines with filter bytes.
  const size_t idat = 33;
  EXPECT_EQ(std::string(png.begin() + idat + 4, png.begin() + idat + 8), "IDAT");
  const size_t z = idat + 8;
  EXPECT_EQ(png[z], 0x78);
  EXPECT_EQ((png[z] * 256 + png[z + 1]) % 31, 0);
  EXPECT_EQ(png[z + 2], 1);
  EXPECT_EQ(png[z + 3] | (png[z + 4] << 8), 2 * (1 + 9));
  EXPECT_EQ(png[z + 7], 0);  // filter byte of row 0
  EXPECT_EQ(png[z + 8], img.pixels[0]);
  EXPECT_EQ(png[z + 7 + 10], 0);  // filter byte of row 1
  EXPECT_EQ(png[z + 7 + 11], img.pixels[9]);
  EXPECT_EQ(std::string(png.end() - 8, png.end() - 4), "IEND");
}

TEST(WriteReportTest, WritesMarkdownAndImages) {
  const fs::path dir = TempDir("full");
  {
    std::ofstream m(dir / kMetricsFile);
    for (int s = 1; s <= 20; ++s) {
      m << "{\"step\": " << s << ", \"reward_mean\": " << (-0.5 + 0.04 * s)
        << ", \"accuracy\": " << (0.25 + 0.02 * s) << ", \"tokens\": 1000, \"wall_s\": " << 1.5 * s
        << "}\n";
      if (s % 10 == 0) m << "{\"step\": " << s << ", \"eval\": {\"accuracy\": 0.5}}\n";
    }
    m << "not json\n";
  }
  EvalReport base, fin;
  base.source = fin.source = "arithmetic:heldout";
  base.problems = fin.problems = 200;
  base.samples = fin.samples = 8;
  base.accuracy = 0.315;
  fin.accuracy = 0.525;
  base.maj_at_k = 0.4;
  fin.maj_at_k = 0.614;
  base.pass_at_k = 0.7;
  fin.pass_at_k = 0.8;
  std::ofstream(dir / kBaseEvalFile) << EvalReportJson(base);
  std::ofstream(dir / kFinalEvalFile) << EvalReportJson(fin);

  ASSERT_TRUE(WriteReport(dir.string()).ok());
  const std::vector<uint8_t> png = ReadBytes(dir / kCurvesPng);
  ASSERT_GT(png.size(), 100u);
  EXPECT_EQ(png[1], 'P');
  EXPECT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  EXPECT_GT(U32(png, 16), 100u);
  const std::string md = ReadText(dir / kReportFile);
  EXPECT_NE(md.find("31.5%"), std::string::npos) << md;
  EXPECT_NE(md.find("52.5%"), std::string::npos);
  EXPECT_NE(md.find("61.4%"), std::string::npos);
  EXPECT_NE(md.find("Maj@8"), std::string::npos);
  EXPECT_NE(md.find("pass@8"), std::string::npos);
  EXPECT_NE(md.find("| steps | 20 |"), std::string::npos);
  EXPECT_NE(md.find("| tokens | 20000 |"), std::string::npos);
  EXPECT_NE(md.find("30.0 s"), std::string::npos);
  EXPECT_NE(md.find(kCurvesPng), std::string::npos);
  EXPECT_NE(ReadText(dir / kCurvesSvg).find("<polyline"), std::string::npos);
  fs::remove_all(dir);
}

TEST(WriteReportTest, EmptyDirIsNotFound) {
  const fs::path dir = TempDir("empty");
  EXPECT_EQ(WriteReport(dir.string()).code(), StatusCode::kNotFound);
  fs::remove_all(dir);
}

TEST(WriteReportTest, MalformedEvalFileIsDataLoss) {
  const fs::path dir = TempDir("bad");
  std::ofstream(dir / kFinalEvalFile) << "{not json";
  EXPECT_EQ(WriteReport(dir.string()).code(), StatusCode::kDataLoss);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace treepo::cluster
