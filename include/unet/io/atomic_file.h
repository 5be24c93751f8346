// Files that appear whole or not at all: written under "<path>.tmp", flushed to disk (fsync),
// renamed over <path>, and the directory synced so the rename itself survives a crash. At any
// moment <path> is either the old file or the new one, never a torn one; a failed write removes
// its temporary. Errors are std::runtime_error with one line "<file>: file: <what>: <errno text>".
#pragma once

#include <cstddef>
#include <string>

namespace unet {

std::string temporary_path(const std::string& path);  // "<path>.tmp"

// Writes `n` bytes as the new content of `path`.
void write_file_atomically(const std::string& path, const void* data, size_t n);
void write_file_atomically(const std::string& path, const std::string& text);

// For a temporary that something else wrote and closed (an HDF5 library file): syncs it, renames
// it over `path` and syncs the directory.
void commit_file(const std::string& tmp, const std::string& path);

}  // namespace unet
