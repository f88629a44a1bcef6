#pragma once
// Opening model files, which are whatever a user points at: a symlink loop, a FIFO, /dev/zero, a directory.
// Each is opened as a regular file of bounded size without ever blocking, or refused with one Error naming the
// path and what is wrong with it ("<path>: not a regular file (a FIFO)", "<path>: cannot open: Too many levels
// of symbolic links").
#include <cstddef>
#include <string>

namespace pensieve {

// Text files (JSON configs, tokenizers, templates) larger than this are refused rather than read.
inline constexpr size_t kMaxTextFileBytes = size_t{1} << 30;

// An open regular file, closed on destruction.
class RegularFile {
 public:
  explicit RegularFile(const std::string& path);  // throws Error
  ~RegularFile();
  RegularFile(RegularFile&& other) noexcept;
  RegularFile& operator=(RegularFile&&) = delete;
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;

  int fd() const { return fd_; }
  size_t size() const { return size_; }  // at open
  const std::string& path() const { return path_; }
  // Gives up ownership: the caller closes the descriptor.
  int Release();

 private:
  std::string path_;
  int fd_ = -1;
  size_t size_ = 0;
};

// The whole file; refused when it holds more than max_bytes.
std::string ReadRegularFile(const std::string& path, size_t max_bytes = kMaxTextFileBytes);

// Whether anything is at path, a broken or looping symlink included (opening it then says what is wrong).
// Never throws.
bool PathPresent(const std::string& path);

// Whether path is a directory (symlinks followed). Never throws.
bool IsDirectory(const std::string& path);

}  // namespace pensieve
