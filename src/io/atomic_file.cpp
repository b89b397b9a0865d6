// Atomic file writes shared by every writer (.npy/.npz, PNG, SVG).
#include "io/atomic_file.h"

#include <convkit/error.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace convkit::io {

namespace {
// Closes (when fd >= 0) and removes a half-written temporary file, then reports `err`.
[[noreturn]] void abandon_temp(const char* op, const std::string& path, const std::string& tmp,
                               int fd, int err) {
  if (fd >= 0) ::close(fd);
  ::unlink(tmp.c_str());
  fail(op, ": cannot write '", path, "': ", std::strerror(err));
}
}  // namespace

void write_file_atomic(const std::string& path, const void* data, size_t size, const char* op) {
  const auto* bytes = static_cast<const char*>(data);
  namespace fs = std::filesystem;
  const fs::path target(path);
  const std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..")
    fail(op, ": '", path, "' names a directory; give a file name such as out.npy");
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  static std::atomic<uint64_t> counter{0};
  // The temporary file lives beside the target so that rename() is atomic (same file system).
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = (dir / ("." + name.substr(0, 180) + ".tmp-" + std::to_string(::getpid()) + "-" +
                  std::to_string(counter++)))
              .string();
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) fail(op, ": cannot write '", path, "': ", std::strerror(errno));
  size_t done = 0;
  while (done < size) {
    const ssize_t w = ::write(fd, bytes + done, size - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      abandon_temp(op, path, tmp, fd, errno);
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 && errno != EINVAL) abandon_temp(op, path, tmp, fd, errno);
  if (::close(fd) != 0) abandon_temp(op, path, tmp, -1, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) abandon_temp(op, path, tmp, -1, errno);
}

void write_file_atomic(const std::string& path, const std::string& bytes, const char* op) {
  write_file_atomic(path, bytes.data(), bytes.size(), op);
}

}  // namespace convkit::io
