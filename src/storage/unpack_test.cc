// Archive unpacking, and above all the refusal of entries that would land
// outside the model directory. The archives are built here with libarchive's
// writer, malicious entries included.

#include "storage/unpack.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "storage/testing/archives.h"

namespace osprey::storage {
namespace {
namespace fs = std::filesystem;
using testing::Dir;
using testing::File;
using testing::Hardlink;
using testing::Special;
using testing::Symlink;

using Entry = testing::ArchiveEntry;

void WriteArchive(const fs::path& file, testing::ArchiveFormat format,
                  const std::vector<Entry>& entries) {
  std::string error;
  ASSERT_TRUE(testing::WriteArchive(file, format, entries, &error)) << error;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("osprey_unpack_test_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "model");
  }
  void TearDown() override { fs::remove_all(root_); }

  // Unpacks `entries` as a tar and expects a refusal naming `entry`, with
  // nothing written next to the model directory.
  void ExpectRefused(const std::vector<Entry>& entries, const std::string& entry) {
    fs::path tar = root_ / "evil.tar";
    WriteArchive(tar, testing::ArchiveFormat::kTar, entries);
    absl::Status s = UnpackArchive(tar, root_ / "model");
    ASSERT_FALSE(s.ok()) << "unpacked " << entry;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(std::string(s.message()).find("'" + entry + "'"), std::string::npos) << s;
    for (const auto& e : fs::directory_iterator(root_))
      EXPECT_TRUE(e.path().filename() == "model" || e.path().filename() == "evil.tar")
          << "written outside: " << e.path();
    EXPECT_FALSE(fs::exists("/tmp/osprey-unpack-test-evil"));
  }

  fs::path root_;
};

TEST(ArchiveNameTest, Suffixes) {
  for (std::string_view n : {"m.tar", "m.tgz", "m.tar.gz", "m.zip", "M.TAR.GZ"})
    EXPECT_TRUE(IsArchiveName(n)) << n;
  for (std::string_view n : {"model.bst", "model.gz", "tar", "model.mar", "m.tar.bz2"})
    EXPECT_FALSE(IsArchiveName(n)) << n;
}

TEST(SafeRelativePathTest, NormalizesOrRefuses) {
  EXPECT_EQ(SafeRelativePath("./a//b/../c").value(), fs::path("a/c"));
  EXPECT_EQ(SafeRelativePath("a/b/").value(), fs::path("a/b/"));
  EXPECT_FALSE(SafeRelativePath("").ok());
  EXPECT_FALSE(SafeRelativePath(".").ok());
  EXPECT_FALSE(SafeRelativePath("/etc/passwd").ok());
  EXPECT_FALSE(SafeRelativePath("../x").ok());
  EXPECT_FALSE(SafeRelativePath("a/../../x").ok());
}

TEST_F(UnpackTest, TarGzTree) {
  fs::path tgz = root_ / "model.tar.gz";
  WriteArchive(
      tgz, testing::ArchiveFormat::kTarGz,
      {Dir("./"), Dir("./1/"), File("./1/model.bst", "weights"), File("./config.json", "{}"),
       Symlink("./latest", "1"), Hardlink("./1/same.bst", "1/model.bst")});
  ASSERT_TRUE(UnpackArchive(tgz, root_ / "model").ok());
  EXPECT_EQ(ReadFile(root_ / "model/1/model.bst"), "weights");
  EXPECT_EQ(ReadFile(root_ / "model/config.json"), "{}");
  EXPECT_EQ(ReadFile(root_ / "model/latest/model.bst"), "weights");
  EXPECT_EQ(ReadFile(root_ / "model/1/same.bst"), "weights");
  EXPECT_TRUE(fs::is_symlink(root_ / "model/latest"));
}

TEST_F(UnpackTest, Zip) {
  fs::path zip = root_ / "model.zip";
  WriteArchive(zip, testing::ArchiveFormat::kZip, {Dir("m/"), File("m/model.onnx", "onnx bytes")});
  ASSERT_TRUE(UnpackArchive(zip, root_ / "model").ok());
  EXPECT_EQ(ReadFile(root_ / "model/m/model.onnx"), "onnx bytes");
}

TEST_F(UnpackTest, RefusesDotDot) {
  ExpectRefused({File("ok.txt", "fine"), File("../evil.txt", "pwned")}, "../evil.txt");
}

TEST_F(UnpackTest, RefusesDotDotInside) {
  ExpectRefused({File("a/../../evil.txt", "pwned")}, "a/../../evil.txt");
}

TEST_F(UnpackTest, RefusesAbsolutePath) {
  ExpectRefused({File("/tmp/osprey-unpack-test-evil", "pwned")}, "/tmp/osprey-unpack-test-evil");
}

TEST_F(UnpackTest, RefusesAbsoluteSymlink) { ExpectRefused({Symlink("etc", "/etc")}, "etc"); }

TEST_F(UnpackTest, RefusesSymlinkClimbingOut) {
  ExpectRefused({Symlink("sub/up", "../../outside")}, "sub/up");
}

TEST_F(UnpackTest, RefusesHardLinkOutside) {
  ExpectRefused({Hardlink("h", "../../etc/passwd")}, "h");
}

TEST_F(UnpackTest, RefusesWriteThroughSymlink) {
  // "d" is a harmless link to a directory inside; writing through it is not.
  ExpectRefused({Dir("sub/"), Symlink("d", "sub"), File("d/x", "through the link")}, "d/x");
}

TEST_F(UnpackTest, RefusesSymlinkChainResolvingOutside) {
  // Each target looks inside lexically ("q/.." is the root), but q -> "."
  // makes p resolve to the parent of the model directory.
  ExpectRefused({Symlink("q", "."), Symlink("p", "q/..")}, "p");
}

TEST_F(UnpackTest, RefusesDevices) { ExpectRefused({Special("dev", AE_IFCHR)}, "dev"); }

TEST_F(UnpackTest, CorruptArchive) {
  fs::path bad = root_ / "bad.tar.gz";
  std::ofstream(bad) << "this is not gzip";
  absl::Status s = UnpackArchive(bad, root_ / "model");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

// A zip whose central directory breaks off: libarchive reports the failure
// without a message, which crashed the unpacker building its own (a
// fuzzer's find; a downloaded model could take the control plane down).
TEST_F(UnpackTest, CorruptArchiveWithoutAMessage) {
  static const char kZip[] =
      "\x50\x4b\x03\x04\x14\x00\x00\x00\x00\x00\x89\x98\x80\x5d\x0e\x74"
      "\x43\xb7\x06\x00\x00\x00\x06\x00\x00\x00\x0f\x00\x00\x00\x6d\x6f"
      "\x64\x65\x6c\x2f\x6d\x6f\x64\x65\x6c\x2e\x70\x6b\x6c\x70\x69\x63"
      "\x6b\x6c\x65\x50\x4b\xdb\xdb\xdb\xdb\xdb\xdb\xdb\xdb\xdb\xdb\xdb"
      "\xdb\xdb\xdb\xdb\xdb\x84\x5d\x0e\x74\x43\xb7\x06\x00\x00\x00\x06"
      "\x00\x00\x00\x0f\x00\x00\x00\x40\x40\x40\x40\x40\x40\x40\x40\x40"
      "\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40"
      "\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40"
      "\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x00\x00"
      "\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x00\x00\x00";
  fs::path bad = root_ / "bad.zip";
  std::ofstream(bad, std::ios::binary).write(kZip, sizeof(kZip) - 1);
  absl::Status s = UnpackArchive(bad, root_ / "model");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

}  // namespace
}  // namespace osprey::storage
