// A synthetic dataset in the MSD Task01_BrainTumour layout that looks like brains: a
// skull-stripped brain ellipsoid (zero outside) with cortex, sulci, interhemispheric fissure,
// ventricles and deep grey nuclei, tissue texture (smooth value noise), a faint bias field and
// voxel noise, four modalities (FLAIR, T1w, T1gd, T2w) with their own contrasts: fluid dark in
// FLAIR / T1 and bright in T2; oedema bright in T2 with a sharp edge and in FLAIR fading towards
// its outer edge, slightly dark in T1; enhancing rim bright in T1gd; necrotic core dark in T1 /
// T1gd, bright in T2, near tissue level in FLAIR. Zero to three tumours per case (case indices
// 3, 8, 13, ... have none; the others 1-3), each an irregular blob (rotated ellipsoid with a
// low-frequency radial perturbation and a noise-driven boundary) with oedema (label 1), enhancing
// rim (label 3) and usually a necrotic core (label 2), as in MSD. Sizes, places, shapes and
// intensities come from (seed, case index) only: deterministic and independent of the thread
// count. Geometry is defined for the 240 x 240 x 155 1 mm volume; other sizes show the same brain
// at another voxel size. Images are int16 with a scl_slope, labels uint8, both .nii.gz, plus
// dataset.json.
//
// Learnable per BraTS region, tested in test_synthetic_msd on z-scored channels at 96x96x62:
//  - whole tumour WT {1,2,3}: no single channel thresholded at any level separates it from the
//    rest of the brain (best single-channel Dice about 0.5-0.6), while "T2 high and FLAIR not
//    dark" (fluid is bright in T2 too) reaches about 0.93;
//  - tumour core TC {2,3}: "T2 > 0.25 and FLAIR > -0.25 and (T1gd > 2 or T1gd < -1.125)": inside
//    the whole tumour the rim enhances and the necrosis is darker in T1gd than the oedema, Dice
//    about 0.9 (0.905-0.925 over seeds 1-4);
//  - enhancing tumour ET {3}: "T1gd > 2" alone, Dice about 1.0 (nothing else enhances here, unlike
//    real scans with vessels and choroid plexus).
// Inside a tumour a voxel's label and intensities come from the same point (no partial volume),
// so the thin rim stays visible and the rules hold at 48x40x24 too.
//
// Speed on 2 cores: about 0.2-0.3 s to synthesize and 0.6-0.8 s to synthesize and write one
// 4 x 155 x 240 x 240 case.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "unet/data/volume.h"

namespace unet {

struct SyntheticSpec {
    int cases = 8;
    int64_t width = 240, height = 240, depth = 155;  // MSD size by default
    uint64_t seed = 1;
};

// Generates one case in memory: image 4 x D x H x W (float intensities, 0 outside the brain,
// positive inside), label 1 x D x H x W (0-3). Throws std::runtime_error below 8 x 8 x 4.
void synthesize_case(const SyntheticSpec& spec, int index, Volume& image, Volume& label);

// Writes <dir>/dataset.json, <dir>/imagesTr/BRATS_###.nii.gz, <dir>/labelsTr/BRATS_###.nii.gz
// (### = index + 1, from 001), creating the directories; throws std::runtime_error naming the path.
// `progress(done, total)` is called after each case when given.
void write_synthetic_msd(const std::string& dir, const SyntheticSpec& spec,
                         const std::function<void(int, int)>& progress = {});

}  // namespace unet
