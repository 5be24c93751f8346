// A trained model applied to whole cases: the preprocessing training saw, the prediction on the
// model's grid (sliding windows in 3D, batched axial slices in 2D), and its inverse back onto the
// source grid.
//
// The preprocessing is the prepared dataset's (unet_prepare, preprocess.h), read from the
// attributes of the dataset the checkpoint trained on, never re-typed by the user:
//   1. depth 155 -> 152 (slices [2, 154), DistMIS), when the dataset was cropped so and the case
//      has 155 slices
//   2. per-channel standardisation over the brain (any channel non-zero)
//   3. 3D: trilinear resize to the dataset's sample shape when the case differs from it
//      (unet_prepare --reshape); 2D: each axial slice resized to the slice size
// The inverse resizes the probabilities back (trilinear, every output channel), puts the cropped
// slices back as background (probability 0), so the result has the source image's exact D x H x W.
// The results have one channel per model output (out_channels: one per region, label_regions.h).
#pragma once

#include <string>

#include "unet/data/hdf5_dataset.h"
#include "unet/data/volume.h"
#include "unet/infer/sliding_window.h"

namespace unet {

struct InputPreprocessing {
    int dims = 3;               // 3: volumes; 2: axial slices
    Dims grid;                  // 3D: D,H,W of the prepared samples; 2D: H,W of a slice
    bool crop_distmis = true;   // step 1
    bool standardize = true;    // step 2 (Intel's npy files came standardised already)

    std::string describe() const;  // one line for the console
    // "key = value" lines, as a checkpoint records them (so that a model can segment scans where
    // its dataset file is not); from_text throws std::runtime_error naming `source`.
    std::string to_text() const;
    static InputPreprocessing from_text(const std::string& text, const std::string& source);
};

// The preprocessing of a prepared dataset: its mode, sample shape and attributes.
InputPreprocessing preprocessing_of(const DatasetAttributes& a, const std::vector<int64_t>& spatial);
inline InputPreprocessing preprocessing_of(const DatasetReader& d) { return preprocessing_of(d.attributes(), d.spatial()); }

// Probabilities (out_channels x D x H x W, the source's grid) of one source case: image C x D x H x W as
// read_nifti returns it (raw intensities). o.roi: the window (3D) or the slice size (2D).
// The image is taken by value: pass it moved when it is not needed afterwards (one volume less).
Volume predict_source_case(UNet& model, Volume image, const InputPreprocessing& p, const WindowOptions& o,
                           const WindowProgress& progress = {});

// Probabilities (out_channels x D x H x W) of data already on the model's grid: 3D a prepared volume (sliding
// windows), 2D a stack of prepared slices (C x N x H x W, one forward per window batch of slices).
Volume predict_prepared_case(UNet& model, const Volume& image, int dims, const WindowOptions& o,
                             const WindowProgress& progress = {});
// The same, taking the image's memory: a 3D image is freed as soon as the network no longer reads it.
Volume predict_prepared_case(UNet& model, Volume&& image, int dims, const WindowOptions& o,
                             const WindowProgress& progress = {});

}  // namespace unet
