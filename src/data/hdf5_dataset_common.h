// What the HDF5 dataset's writer and reader share (src/data only): split names, messages, and the
// file-access properties.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "unet/io/hdf5_util.h"

namespace unet {

inline const char* const kSplitNames[] = {"train", "val", "test"};

// Bounds on the sizes a file states, checked before they size an allocation or an index (a
// damaged or hostile file must be refused in one line, not make us allocate terabytes):
constexpr size_t kMaxCaseIdBytes = 4096;                 // one case id (a file name)
constexpr uint64_t kMaxCaseIdTableBytes = uint64_t(1) << 30;  // all of a split's case ids
constexpr uint64_t kMaxSamples = uint64_t(1) << 31;      // samples in one split
constexpr uint64_t kMaxSpatialSize = 1 << 16;            // one spatial dimension
constexpr uint64_t kMaxSampleBytes = uint64_t(1) << 32;  // one float32 sample (HDF5's chunk limit)
// String attributes (mode, labels, ...) are short: they live in an object header.
constexpr size_t kMaxAttributeBytes = 1 << 20;

inline std::string dims_string(const std::vector<hsize_t>& d) {
    std::ostringstream os;
    os << "[";
    for (size_t i = 0; i < d.size(); ++i) os << (i ? ", " : "") << d[i];
    os << "]";
    return os.str();
}

inline bool is_split_name(const std::string& s) {
    for (const char* n : kSplitNames)
        if (s == n) return true;
    return false;
}

// Lets a file opened for reading work where locks are unsupported (some NFS/Lustre mounts):
// try to lock, and carry on when the file system says locking is disabled.
// HDF5_USE_FILE_LOCKING=FALSE in the environment still switches locking off entirely.
inline Handle file_access_plist(const std::string& path) {
    Handle fapl = checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, path, "file access", "H5Pcreate");
    check(H5Pset_file_locking(fapl.get(), true, true), path, "file access", "H5Pset_file_locking");
    return fapl;
}

}  // namespace unet
