#include "unet/infer/volume_validation.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "unet/infer/case_prediction.h"
#include "unet/infer/segmentation_metrics.h"

namespace unet {

VolumeScoreSums score_volumes(UNet& model, const DatasetReader& data, const std::string& split,
                              const WindowOptions& window, int part, int parts) {
    VolumeScoreSums sums;
    const std::vector<int64_t>& sp = data.spatial();
    Volume image;
    image.resize(data.channels(), sp[0], sp[1], sp[2]);
    std::vector<float> truth(size_t(image.voxels()));
    std::vector<uint8_t> pred_mask(truth.size()), true_mask(truth.size());
    for (int64_t i = part; i < data.count(split); i += parts) {
        data.read_sample(split, i, image.data.data(), truth.data());
        const Volume prob = predict_prepared_case(model, image, 3, window);
        for (size_t k = 0; k < truth.size(); ++k) {
            pred_mask[k] = prob.data[k] >= 0.5f;
            true_mask[k] = truth[k] > 0.5f;
        }
        const RegionScore s = score_case(pred_mask.data(), true_mask.data(), sp[0], sp[1], sp[2], Spacing{},
                                         whole_tumour_region(), EmptyRule::brats)[0];
        sums.dice += s.dice, sums.hd95_mm += s.hd95_mm, sums.sensitivity += s.sensitivity;
        sums.specificity += s.specificity, sums.cases += 1;
    }
    return sums;
}

int64_t score_volumes_memory_bytes(const DatasetReader& data, int out_channels, const WindowOptions& window) {
    const Dims volume(data.spatial().begin(), data.spatial().end());
    const int64_t V = product(volume);
    const int64_t held = 4 * (int64_t(data.channels()) + 1) * V + 2 * V;  // image, truth, two uint8 masks
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
