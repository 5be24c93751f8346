// What the NIfTI reader (nifti.cpp) and writer (nifti_write.cpp) share (src/data only): the
// header sizes, messages naming the file, niftilib's quiet mode, byte swapping.
#pragma once

#include <nifti1_io.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "unet/core/text.h"

namespace unet {
namespace nifti_detail {

constexpr size_t kNifti1HeaderSize = 348;
constexpr size_t kNifti2HeaderSize = 540;

[[noreturn]] inline void fail(const std::string& path, const std::string& what) {
    throw std::runtime_error("NIfTI " + path + ": " + what);
}

// niftilib reports failures on stderr at its default debug level 1; we report them ourselves.
inline void quiet_niftilib() {
    static std::once_flag once;
    std::call_once(once, [] { nifti_set_debug_level(0); });
}

// true for a .nii.gz name, false for .nii; any other name fails naming the file.
inline bool gzip_name(const std::string& path) {
    if (ends_with(path, ".nii.gz")) return true;
    if (!ends_with(path, ".nii")) fail(path, "expected a file name ending in .nii or .nii.gz");
    return false;
}

template <typename T>
void bswap_inplace(T& v) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    std::reverse(b, b + sizeof(T));
    std::memcpy(&v, b, sizeof(T));
}

inline std::string dims_string(const int64_t* dim) {
    std::string s;
    for (int i = 1; i <= std::max<int64_t>(1, std::min<int64_t>(dim[0], 7)); ++i) {
        if (i > 1) s += "x";
        s += std::to_string(dim[i]);
    }
    return s;
}

}  // namespace nifti_detail
}  // namespace unet
