// Writes a whole file atomically: a temporary file beside the target (same file system), then
// rename(2). On any failure the temporary file is removed and convkit::Error names `op`, the path
// and the reason, so no partial output is ever left behind.
#pragma once
#include <cstddef>
#include <string>

namespace convkit::io {

void write_file_atomic(const std::string& path, const void* bytes, size_t size, const char* op);
void write_file_atomic(const std::string& path, const std::string& bytes, const char* op);

}  // namespace convkit::io
