#include "common/file_io.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/atomic_file.h"
#include "common/json_file.h"
#include "common/testing/paths.h"
#include "common/utf8.h"

namespace treepo {
namespace {

namespace fs = std::filesystem;

class FileIoTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::FreshTempDir("file_io_test"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Write(const std::string& name, const std::string& bytes) {
    std::ofstream(Path(name), std::ios::binary) << bytes;
  }
  std::string dir_;
};

TEST_F(FileIoTest, ReadRefusesDirectoriesAndMissingFilesByName) {
  fs::create_directories(Path("d"));
  Result<std::string> r = ReadFileToString(Path("d"), "prompt file");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("prompt file " + Path("d") + ": is a directory"),
            std::string::npos)
      << r.status().message();
  r = ReadFileToString(Path("missing"), "tokenizer");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("does not exist"), std::string::npos);
  Write("f", "abc");
  r = ReadFileToString(Path("f"), "x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "abc");
}

TEST_F(FileIoTest, WritableChecksCreateDirectoriesAndRefuseImpossiblePaths) {
  EXPECT_TRUE(EnsureWritableDir(Path("a/b/c"), "out_dir").ok());
  EXPECT_TRUE(fs::is_directory(Path("a/b/c")));
  EXPECT_TRUE(fs::is_empty(Path("a/b/c")));  // the probe file is gone
  Write("file", "x");
  Status s = EnsureWritableDir(Path("file"), "out_dir");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  s = EnsureWritableDir(Path("file/sub"), "out_dir");  // under a regular file
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("cannot create"), std::string::npos) << s.message();
  EXPECT_TRUE(CheckWritableFile(Path("new/out.jsonl"), "--out").ok());
  s = CheckWritableFile(Path("a"), "--out");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("is a directory"), std::string::npos) << s.message();
  EXPECT_FALSE(CheckWritableFile("/proc/treepo_cannot_be_here/x.json", "--out").ok());
}

TEST_F(FileIoTest, FindsTheFirstInvalidUtf8Byte) {
  EXPECT_EQ(FindInvalidUtf8("plain ascii"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("ab\xff"), 2u);
  EXPECT_EQ(FindInvalidUtf8("a\xc3"), 1u);             // truncated
  EXPECT_EQ(FindInvalidUtf8("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("x\xed\xa0\x80"), 1u);     // surrogate
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
}

TEST_F(FileIoTest, JsonFilesSayWhetherTheyAreBadUtf8OrBadJson) {
  Write("latin1.json", "{\"name\": \"caf\xe9\"}");
  Result<nlohmann::json> j = ReadJsonObjectFile(Path("latin1.json"));
  EXPECT_EQ(j.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(j.status().message().find("not valid UTF-8 (byte 13)"), std::string::npos)
      << j.status().message();
  Write("bad.json", "{\"name\": ");
  j = ReadJsonObjectFile(Path("bad.json"));
  EXPECT_NE(j.status().message().find("not valid JSON"), std::string::npos) << j.status().message();
  fs::create_directories(Path("config.json"));
  j = ReadJsonObjectFile(Path("config.json"));
  EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(FileIoTest, AtomicFileReplacesWholeOrNotAtAll) {
  Write("out.txt", "old");
  {
    Result<AtomicFile> f = AtomicFile::Create(Path("out.txt"));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE(f->Append("half of the new").ok());
    // Destroyed uncommitted: the old file stays, the temporary is gone.
  }
  std::ifstream in(Path("out.txt"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);

  ASSERT_TRUE(WriteFileAtomically(Path("out.txt"), "new").ok());
  std::ifstream in2(Path("out.txt"));
  text.assign((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "new");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);

  fs::create_directories(Path("adir"));
  const Status s = WriteFileAtomically(Path("adir"), "x");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("is a directory"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace treepo
