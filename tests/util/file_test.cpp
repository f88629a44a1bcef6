// util/file.h: regular files are read whole; everything else is refused at once with a message naming it.
#include "util/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "util/error.h"

namespace pensieve {
namespace {

namespace fs = std::filesystem;

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pensieve-file-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Message(const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
  std::string dir_;
};

TEST_F(FileTest, ReadsARegularFileWhole) {
  std::ofstream(dir_ + "/a") << "hello";
  EXPECT_EQ(ReadRegularFile(dir_ + "/a"), "hello");
  EXPECT_EQ(ReadRegularFile(dir_ + "/a", 5), "hello");
  EXPECT_EQ(Message([&] { ReadRegularFile(dir_ + "/a", 4); }),
            dir_ + "/a: 5 bytes or more, more than the 4 bytes a file of this kind may hold");
  fs::create_symlink("a", dir_ + "/link");
  EXPECT_EQ(ReadRegularFile(dir_ + "/link"), "hello");  // symlinks to regular files are fine
}

TEST_F(FileTest, RefusesWhatIsNotARegularFile) {
  ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
  EXPECT_EQ(Message([&] { ReadRegularFile(dir_ + "/fifo"); }), dir_ + "/fifo: not a regular file (a FIFO)");
  EXPECT_EQ(Message([&] { RegularFile f("/dev/zero"); }), "/dev/zero: not a regular file (a character device)");
  EXPECT_EQ(Message([&] { ReadRegularFile(dir_); }), dir_ + ": not a regular file (a directory)");
  fs::create_symlink("loop", dir_ + "/loop");
  EXPECT_EQ(Message([&] { ReadRegularFile(dir_ + "/loop"); }),
            dir_ + "/loop: cannot open: Too many levels of symbolic links");
  EXPECT_EQ(Message([&] { ReadRegularFile(dir_ + "/none"); }), dir_ + "/none: cannot open: No such file or directory");
}

TEST_F(FileTest, PresenceCountsBrokenLinks) {
  EXPECT_FALSE(PathPresent(dir_ + "/none"));
  fs::create_symlink("loop", dir_ + "/loop");
  EXPECT_TRUE(PathPresent(dir_ + "/loop"));  // present: opening it says what is wrong
  EXPECT_FALSE(IsDirectory(dir_ + "/loop"));
  EXPECT_TRUE(IsDirectory(dir_));
}

}  // namespace
}  // namespace pensieve
