// Whole-volume validation for 3D training: every validation volume of a prepared dataset
// segmented by sliding windows (sliding_window.h) and scored as unet_predict scores it (Dice, HD95,
// sensitivity, specificity per trained region; the BraTS empty-mask rule), so the Dice that picks
// checkpoint_best.h5 is the Dice of whole brains, not of random patches.
//
// Distributed: rank `part` of `parts` scores the cases part, part + parts, ...; the sums are
// added over the ranks by the caller, then mean() gives the same numbers on every rank.
#pragma once

#include <array>
#include <cstdint>
#include <vector>
#include <string>

#include "unet/data/hdf5_dataset.h"
#include "unet/infer/segmentation_metrics.h"
#include "unet/infer/sliding_window.h"

namespace unet {

// Sums over cases of each region's scores. They travel in one all-reduce (data(), kFields
// doubles); `regions` is not summed.
struct VolumeScoreSums {
    enum Metric { kDice = 0, kHd95, kSensitivity, kSpecificity, kMetrics };
    static constexpr int kFields = kMetrics * kMaxRegions + 1;  // the last: the number of cases
    int regions = 1;
    std::array<double, kFields> sums{};

    VolumeScoreSums() = default;
    explicit VolumeScoreSums(int region_count) : regions(region_count) {}
    double* data() { return sums.data(); }
    void add_case(const std::vector<RegionScore>& scores);  // one per region, in order
    int64_t cases() const { return int64_t(sums[kFields - 1]); }
    double mean(Metric m, int region) const;
    double mean(Metric m) const;  // over the regions
    double mean_dice() const { return mean(kDice); }
    double mean_hd95() const { return mean(kHd95); }
    double mean_sensitivity() const { return mean(kSensitivity); }
    double mean_specificity() const { return mean(kSpecificity); }
};

// Scores this rank's share of `split` (3D datasets; voxel spacing 1, as prepared) for a model with
// one output per region: each case's region outputs become a label map (label_regions.h, as
// unet_predict writes it), scored per region against the case's labels. `progress` is called
// after every window.
VolumeScoreSums score_volumes(UNet& model, const DatasetReader& data, const std::string& split,
                              const WindowOptions& window, const Regions& regions, int part = 0, int parts = 1,
                              const WindowProgress& progress = {});

// The most score_volumes holds at once beyond the network: one volume with its mask, the sliding
// window's sums, then the probabilities, both masks and the surface-distance buffers of scoring
// (about 12 bytes per voxel at worst); all freed when it returns (the reader's chunk cache stays:
// DatasetReader::sample_cache_bytes).
int64_t score_volumes_memory_bytes(const DatasetReader& data, int out_channels, const WindowOptions& window);

// The default of --val_whole_every: every epoch when scoring the validation volumes costs at most a
// quarter of an epoch's training arithmetic, otherwise every k epochs so that it averages to that
// quarter: k = ceil(cost / (0.25 x epoch)), where cost = cases x windows per case x one window's
// forward, and an epoch = training samples x (forward + backward) of one patch (3 forwards).
int whole_volume_every(int64_t val_cases, int64_t windows_per_case, double window_voxels, int64_t train_samples,
                       double patch_voxels);

}  // namespace unet
