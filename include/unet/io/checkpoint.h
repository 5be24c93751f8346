// Training checkpoints: one HDF5 file holding everything needed to continue a run bit for bit.
//
// Contents are generic so the trainer decides what goes in:
//   arrays    named float32 1-D datasets (flat parameters, batch-norm buffers, optimizer moments)
//   integers  named int64 attributes (step, epoch, position in the epoch, RNG state words, ...)
//   strings   named string attributes (resolved configuration, command line, parameter layout)
// Root attribute "checkpoint_format" = kCheckpointFormatVersion. Arrays are stored in chunks with
// Fletcher32 checksums, strings as fixed-length UTF-8, in HDF5's checksummed 1.10 object format
// (layout: checkpoint.cpp); checkpoints written before (contiguous arrays, variable-length
// strings) read the same. A damaged file is refused naming the array or entry.
//
// write_checkpoint is atomic: it writes "<path>.tmp", flushes and fsyncs it, renames it over
// <path> and fsyncs the directory, so a crash at any moment leaves either the old or the new file,
// never a torn one. Errors are std::runtime_error with one line naming the file.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace unet {

// A checkpoint file that is intact but not what was asked for: missing, a directory, not an HDF5
// file, another program's HDF5 file, another checkpoint_format, or (restore_state) another model.
// The user named the wrong file, so the programs report it as a usage error (exit 2) naming their
// flag. Every other error of read_checkpoint is damage found while reading (a truncated file, a
// failed checksum): a plain std::runtime_error, exit 1.
class WrongCheckpoint : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

constexpr int kCheckpointFormatVersion = 1;

struct Checkpoint {
    std::map<std::string, std::vector<float>> arrays;
    std::map<std::string, int64_t> integers;
    std::map<std::string, std::string> strings;
};

void write_checkpoint(const std::string& path, const Checkpoint& c);
// Validates the format version; throws WrongCheckpoint naming the file if it is missing, not HDF5,
// or not ours, and std::runtime_error naming the file and the object when it is damaged.
// `arrays` false reads only the integers and strings (the settings a resume starts from).
Checkpoint read_checkpoint(const std::string& path, bool arrays = true);

}  // namespace unet
