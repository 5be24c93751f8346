// Segmentation scores of one case, as BraTS and MONAI report them: Dice, HD95 in mm,
// sensitivity, specificity and volumes, per tumour region, plus mean / median / std over cases.
// Pure C++ (OpenMP inside the distance transform); no oneDNN, no MPI.
//
// Arrays are label maps of D x H x W uint8 voxels, x (W) fastest, as the prepared datasets and
// our NIfTI reader order them. Spacing is in mm in the same z, y, x order.
//
// Definitions
// - Region: a set of label values; a voxel is in the region when its label is in the set. Both the
//   prediction and the truth are reduced to one binary mask per region this way.
// - Dice = 2 |P n T| / (|P| + |T|).
// - HD95 (MONAI 1.3.2 compute_hausdorff_distance(percentile=95, directed=False), checked against
//   it by tests/e2e/metrics_vs_monai.sh): the surface of a mask is its voxels with at least one of the
//   6 face neighbours outside the mask (outside the array counts as outside the mask), i.e. the
//   mask XOR its binary erosion by the 3D cross. For every surface voxel of P, the Euclidean
//   distance in mm (voxel centres, anisotropic spacing) to the nearest surface voxel of T; the
//   95th percentile of those with linear interpolation (numpy / torch.quantile "linear"); the
//   same from T to P; HD95 is the larger of the two directed percentiles.
//   Others differ: DeepMind's surface-distance also takes the larger directed percentile, but over
//   surface elements between voxels weighted by their area: on random blobs at 1 mm and
//   2.2 x 0.5 x 1 mm its HD95 came out 0.4-0.8 mm below MONAI's (and ours); medpy's hd95 pools both directions' distances into one percentile. We follow MONAI.
// - Sensitivity = TP / (TP + FN), specificity = TN / (TN + FP); 1 when the denominator is 0.
// - Volumes in ml = voxels * z * y * x mm^3 / 1000.
//
// Empty masks (EmptyRule)
// - brats (default; BraTS legacy / 2023): truth and prediction both empty: Dice 1, HD95 0;
//   exactly one empty: Dice 0, HD95 374 mm (the diagonal of the 240 x 240 x 155 1 mm BraTS grid,
//   373.1 mm, rounded up as the challenge does), whatever the spacing.
// - ignore (MONAI's DiceMetric(ignore_empty=True)): empty truth: Dice NaN and HD95 NaN, so the
//   case leaves the mean (summarize skips NaN); non-empty truth with an empty prediction: Dice 0
//   and HD95 NaN (MONAI's Hausdorff distance of an empty mask is NaN, and so is ours: no surface
//   to measure from, and 374 would be the BraTS convention, not MONAI's).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unet/data/label_regions.h"

namespace unet {

enum class EmptyRule { brats, ignore };

// "brats" | "ignore" (the value of --empty); anything else throws UsageError naming --empty.
EmptyRule parse_empty_rule(const std::string& text);
const char* empty_rule_name(EmptyRule rule);

// Voxel spacing in mm, in the arrays' z (D), y (H), x (W) order.
struct Spacing {
    double z = 1, y = 1, x = 1;
};

// BraTS's HD95 for a case where exactly one of truth and prediction is empty (EmptyRule::brats).
constexpr double kBratsEmptyHd95Mm = 374.0;

struct RegionScore {
    std::string region;
    double dice = 0, hd95_mm = 0, sensitivity = 0, specificity = 0, predicted_ml = 0, true_ml = 0;
    bool truth_empty = false, prediction_empty = false;
};

// Scores of one case, one entry per region, in the order of `regions`.
// predicted, truth: label maps, D*H*W uint8 each, x fastest.
// Throws std::invalid_argument for a non-positive shape, a spacing that is not finite and > 0,
// no regions, or a region label outside 0..255.
std::vector<RegionScore> score_case(const uint8_t* predicted, const uint8_t* truth, int64_t D, int64_t H,
                                    int64_t W, const Spacing& s, const std::vector<Region>& regions,
                                    EmptyRule rule);

// HD95 in mm of two binary masks (D*H*W bytes, non-zero = inside), as defined above. Both should
// be non-empty; when either is empty the result is NaN (MONAI's value; score_case applies the
// EmptyRule before asking). Cost: two exact Euclidean distance transforms over the bounding box
// of the union (one voxel of margin), O(box voxels), parallel over lines with OpenMP.
// Throws std::invalid_argument like score_case.
double hd95_mm(const uint8_t* a, const uint8_t* b, int64_t D, int64_t H, int64_t W, const Spacing& s);

// Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher's separable lower
// envelope of parabolas), exposed for the tests: for every voxel of the D x H x W grid, the squared
// distance in mm^2 to the nearest voxel with feature[i] != 0; +infinity everywhere when there is
// none. out has D*H*W doubles.
void squared_distance_transform(const uint8_t* feature, int64_t D, int64_t H, int64_t W, const Spacing& s,
                                double* out);

// Mean, median and standard deviation (population, ddof = 0, as numpy's default) over the finite
// values; NaN (a case left out by EmptyRule::ignore) and infinities are skipped. count = the values
// used. With none: mean, median and std NaN, count 0.
struct Statistic {
    double mean, median, std;
    int64_t count;
};
Statistic summarize(const std::vector<double>& values);

}  // namespace unet
