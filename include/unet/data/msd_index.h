// The Medical Segmentation Decathlon layout: <dir>/dataset.json lists "training" pairs
// {"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}. Entries whose
// file name starts with '.' or '_' (macOS resource forks in the MSD tarballs) are skipped.
#pragma once

#include <string>
#include <vector>

namespace unet {

struct MsdCase {
    std::string id;     // file name without .nii[.gz], e.g. "BRATS_001"
    std::string image;  // absolute or dir-relative path, resolved against the dataset dir
    std::string label;
};

struct MsdIndex {
    std::string name;                  // dataset.json "name"
    int modalities = 0;                // size of "modality" (4 for BrainTumour); 0 if absent
    std::string labels_json;           // the "labels" object, as JSON text
    std::vector<MsdCase> cases;
};

// Throws std::runtime_error naming dataset.json (missing, not JSON, no "training" list, an entry
// without "image" / "label" strings) or the first listed case whose image or label file does not
// exist. Paths are resolved against `dir` and normalized ("./imagesTr/x" -> "<dir>/imagesTr/x").
MsdIndex read_msd_index(const std::string& dir);

}  // namespace unet
