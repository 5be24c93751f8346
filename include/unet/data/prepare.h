// unet_prepare's conversions into the HDF5 dataset of hdf5_dataset.h.
//   prepare_msd  MSD Task01 folder (dataset.json + NIfTI) -> 3D volumes or 2D axial slices
//   prepare_npy  Intel's BraTS npy files (imgs_/msks_ train/test, N x H x W x C) -> 2D slices
// Both print a progress bar and return a summary; the output appears only when complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

struct PrepareOptions {
    std::string source_dir;
    std::string output = "data/brats.h5";
    std::string mode = "3d";                              // 3d | 2d
    std::vector<double> split{0.7, 0.15, 0.15};
    std::vector<int64_t> reshape;                         // D,H,W (e.g. 152,240,240); empty: keep
    int64_t slice_size = 128;                             // 2d: slices resized to slice_size^2
    bool keep_empty_slices = false;                       // 2d: keep slices with no brain and no tumour
    uint64_t seed = 816;
};

struct PrepareSummary {
    int64_t cases = 0;
    int64_t samples[3] = {0, 0, 0};  // train, val, test
    double tumour_fraction = 0;      // share of tumour voxels over all written samples
    int64_t output_bytes = 0;
    double seconds = 0;
    std::vector<int64_t> spatial;    // of every sample: D,H,W (3D) or H,W (2D slices)
    std::string describe(const std::string& output) const;
};

PrepareSummary prepare_msd(const PrepareOptions& o);
PrepareSummary prepare_npy(const std::string& npy_dir, const PrepareOptions& o);

}  // namespace unet
