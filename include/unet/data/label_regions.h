// The tumour regions a model is trained for and scored on, and how they relate to label maps.
//
// MSD Task01 labels: 0 background, 1 oedema, 2 non-enhancing tumour (necrotic core), 3 enhancing
// tumour. BraTS reports three nested regions (nnU-Net's and the challenge's order):
//   wt  whole tumour     {1, 2, 3}
//   tc  tumour core      {2, 3}
//   et  enhancing tumour {3}
// A region model has one sigmoid output channel per region, in the order the user listed them
// (`--labels wt,tc,et`); the truth of channel r is "the voxel's label is in region r".
//
// Back to a label map (unet_predict's mask, the whole-volume scores), as nnU-Net does for BraTS:
// start from background and paint each predicted region (p > 0.5) with its smallest label, the
// larger regions first, so ET -> 3, TC without ET -> 2, WT without TC -> 1. A perfect prediction of
// all three regions gives back the source labels; a WT-only model gives the binary mask 0/1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

struct Region {
    std::string name;         // "WT", "TC" or "ET"
    std::vector<int> labels;  // label values 0..255 that make up the region
};
using Regions = std::vector<Region>;

constexpr int kMaxRegions = 3;  // wt, tc, et, each at most once
constexpr int kMaxLabel = 3;    // MSD Task01's largest label value

// {"WT", {1, 2, 3}}: today's binary tumour class (a 0/1 mask is "label 1").
Regions whole_tumour_region();
// WT, TC, ET.
Regions brats_regions();

// The value of --labels: "wt" | "regions" (wt,tc,et) | a comma list of wt, tc, et (any case).
// Throws UsageError naming --labels for an empty list, an unknown name or a duplicate.
Regions parse_regions(const std::string& text);
// "wt", "wt,tc,et": the form parse_regions reads back (checkpoints record it).
std::string regions_text(const Regions& regions);
bool is_whole_tumour_only(const Regions& regions);

// labels: `voxels` label values; out: regions.size() x voxels floats, 1 where the label is in the
// region, else 0. Throws std::runtime_error for a label above kMaxLabel (naming it).
void region_masks(const uint8_t* labels, int64_t voxels, const Regions& regions, float* out);

// probabilities: regions.size() x voxels (a model's output); out: a label map by the rule above.
void label_map_from_regions(const float* probabilities, int64_t voxels, const Regions& regions, uint8_t* out,
                            float threshold = 0.5f);

}  // namespace unet
