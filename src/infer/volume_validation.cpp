#include "unet/infer/volume_validation.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "unet/infer/case_prediction.h"
#include "unet/infer/segmentation_metrics.h"

namespace unet {

void VolumeScoreSums::add_case(const std::vector<RegionScore>& scores) {
    for (int r = 0; r < regions; ++r) {
        const RegionScore& s = scores[size_t(r)];
        const double values[kMetrics] = {s.dice, s.hd95_mm, s.sensitivity, s.specificity};
        for (int m = 0; m < kMetrics; ++m) sums[size_t(m * kMaxRegions + r)] += values[m];
    }
    sums[kFields - 1] += 1;
}

double VolumeScoreSums::mean(Metric m, int region) const {
    const double n = sums[kFields - 1];
    return n > 0 ? sums[size_t(m * kMaxRegions + region)] / n : 0;
}

double VolumeScoreSums::mean(Metric m) const {
    double s = 0;
    for (int r = 0; r < regions; ++r) s += mean(m, r);
    return s / double(regions);
}

VolumeScoreSums score_volumes(UNet& model, const DatasetReader& data, const std::string& split,
                              const WindowOptions& window, const Regions& regions, int part, int parts,
                              const WindowProgress& progress) {
    VolumeScoreSums sums(int(regions.size()));
    const std::vector<int64_t>& sp = data.spatial();
    Volume image;
    image.resize(data.channels(), sp[0], sp[1], sp[2]);
    const int64_t V = image.voxels();
    std::vector<uint8_t> predicted(static_cast<size_t>(V)), truth(static_cast<size_t>(V));
    for (int64_t i = part; i < data.count(split); i += parts) {
        data.read_labels(split, i, image.data.data(), truth.data());
        const Volume prob = predict_prepared_case(model, image, 3, window, progress);
        label_map_from_regions(prob.data.data(), V, regions, predicted.data());
        sums.add_case(score_case(predicted.data(), truth.data(), sp[0], sp[1], sp[2], Spacing{}, regions, EmptyRule::brats));
    }
    return sums;
}

int64_t score_volumes_memory_bytes(const DatasetReader& data, int out_channels, const WindowOptions& window) {
    const Dims volume(data.spatial().begin(), data.spatial().end());
    const int64_t V = product(volume);
    const int64_t held = 4 * int64_t(data.channels()) * V + 2 * V;  // image, the two label maps
    const int64_t predicting = sliding_window_memory_bytes(data.channels(), out_channels, volume, window);
    const int64_t scoring = 4 * int64_t(out_channels) * V + 12 * V;
    return held + std::max(predicting, scoring);
}

int whole_volume_every(int64_t val_cases, int64_t windows_per_case, double window_voxels, int64_t train_samples,
                       double patch_voxels) {
    const double cost = double(val_cases) * double(windows_per_case) * window_voxels;
    const double epoch = 3.0 * double(train_samples) * patch_voxels;
    if (epoch <= 0 || cost <= 0.25 * epoch) return 1;
    return int(std::ceil(cost / (0.25 * epoch)));
}

}  // namespace unet
