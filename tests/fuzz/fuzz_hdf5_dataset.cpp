// libFuzzer harness: the prepared HDF5 dataset (DatasetReader: open and validate, then the first and
// last sample of every split with its labels and case id), as unet_train and unet_predict read it.
// HDF5 does not defend its own metadata, so what this finds inside the library may need a check of
// ours before the call that crashed (the format's checksums, a size bounded by the file's).
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include "fuzz_child.h"
#include "fuzz_input.h"
#include "unet/data/hdf5_dataset.h"

namespace {

// A first-wave input's child read ends within fuzz::kChildCpuMilliseconds of CPU (see fuzz_child.h).
[[maybe_unused]] const bool children_bounded = fuzz::bound_forked_children();

// Samples larger than this are not read (a mutated shape may claim a large, valid one: only slow).
constexpr int64_t kMaxSampleValues = int64_t(1) << 22;

void read_some(const unet::DatasetReader& d) {
    int64_t voxels = 1;
    for (int64_t n : d.spatial()) {
        if (n <= 0 || voxels > kMaxSampleValues / n) return;  // (without overflowing)
        voxels *= n;
    }
    if (d.channels() <= 0 || voxels * d.channels() > kMaxSampleValues) return;
    std::vector<float> image(static_cast<size_t>(voxels * d.channels()));
    std::vector<uint8_t> labels(static_cast<size_t>(voxels));
    for (const char* split : {"train", "val", "test"}) {
        const int64_t n = d.count(split);
        for (int64_t i : {int64_t(0), n - 1}) {
            if (i < 0) continue;
            try {
                d.read_labels(split, i, image.data(), labels.data());
                d.case_id(split, i);
            } catch (const std::exception&) {  // one damaged sample; the next may read
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string path = fuzz::as_file(data, size, "dataset.h5");
    try {
        const unet::DatasetReader d(path);
        read_some(d);
    } catch (const std::exception&) {
    }
    // Removed, so that the next input is a new file: HDF5 recognises a file it still holds open
    // (an id a bug left open) by its inode, and would hand back the old one.
    std::remove(path.c_str());
    return 0;
}
