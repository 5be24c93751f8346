// The prepared dataset: one HDF5 file that everything after unet_prepare reads.
//
// Format version 2 (attribute "format_version" = 2 on the root group):
//   root attributes  format_version (int), layout ("NCDHW" for 3D, "NCHW" for 2D), mode ("3d"|"2d"),
//                    channels (int), normalization, crop, split_seed (int64), source, labels (JSON:
//                    the label names of the source's dataset.json), mask_labels ("msd" | "binary")
//   /<split>/images  float32 [N, C, D, H, W] (2D: [N, C, H, W]), one chunk per sample,
//                    shuffle + deflate(4) + Fletcher32 (the checksum of the stored chunk, last)
//   /<split>/masks   uint8   [N, 1, D, H, W] (2D: [N, 1, H, W]), same chunking. mask_labels "msd":
//                    MSD Task01's label map 0-3 (0 background, 1 oedema, 2 non-enhancing tumour,
//                    3 enhancing tumour), so every BraTS region can be trained (label_regions.h);
//                    "binary": 0/1, the whole tumour only (Intel's .npy masks)
// Version 1 (the first wave's files) has no mask_labels and binary masks; it is read as "binary".
//   /<split>/case_ids  fixed-length UTF-8 strings [N], NUL-padded to the longest id, one chunk,
//                    Fletcher32 (2D: the case each slice came from)
// Every string is fixed length (none in HDF5's global heap, which nothing checks: a damaged heap
// crashed the library), and the file is in HDF5's 1.10 object format, whose superblock, object
// headers, attribute heaps and chunk indexes carry checksums. Files written before (variable-
// length strings, the earliest object format, no Fletcher32) read the same; their metadata are
// opened in a child process first, so that the HDF5 library crashing on their damage ends in one
// line (their samples are read unprotected). A chunk whose
// checksum fails is refused when read, naming the file, the dataset and the sample; sizes the file
// states (sample count, shape, chunk shape, string lengths) are bounded before they size a buffer.
// Splits are "train", "val", "test"; a split with no samples is absent.
//
// The writer writes to "<path>.tmp" and renames on finish(), so a half-written file never has the
// final name. Every HDF5 call is checked; errors are std::runtime_error naming the file and the
// object, on one line. The HDF5 library's own error printer is silenced (per thread).
// Files open read-only and also work with HDF5_USE_FILE_LOCKING=FALSE (network file systems).
//
// Speed (2-core dev machine, one thread, synthetic brain-like data): a 4x128x128 sample reads in
// about 0.95 ms, a 4x64^3 one in about 12 ms, a 4x152x240x240 one in about 0.5 s; zlib's inflate
// is over 80% of that. HDF5 serializes every call behind one global lock, so more reader threads
// do not read faster.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "unet/data/label_regions.h"

namespace unet {

constexpr int kDatasetFormatVersion = 2;
constexpr const char* kMaskLabelsMsd = "msd";
constexpr const char* kMaskLabelsBinary = "binary";

struct DatasetAttributes {
    std::string mode = "3d";  // "3d" | "2d"
    int channels = 4;
    std::string normalization = "z-score per channel over non-zero (brain) voxels";
    std::string crop;
    int64_t split_seed = 0;
    std::string source;
    std::string labels = "{}";
    std::string mask_labels = kMaskLabelsBinary;  // kMaskLabelsMsd | kMaskLabelsBinary
};

// The largest mask value a file with these mask_labels holds (3 for "msd", 1 for "binary").
int max_mask_label(const std::string& mask_labels);

class DatasetWriter {
   public:
    // spatial: D,H,W (3d) or H,W (2d). Creates "<path>.tmp" (truncating it).
    DatasetWriter(const std::string& path, const DatasetAttributes& attrs, const std::vector<int64_t>& spatial);
    ~DatasetWriter();  // without finish(): closes and removes the temporary file
    DatasetWriter(const DatasetWriter&) = delete;
    DatasetWriter& operator=(const DatasetWriter&) = delete;

    // Declares a split with exactly `count` samples (count may be 0: nothing is created).
    void add_split(const std::string& split, int64_t count);
    // image: C x spatial floats; mask: spatial bytes (values above max_mask_label throw). Throws for a
    // split not declared or an index outside [0, count). Writing an index again replaces it.
    void write_sample(const std::string& split, int64_t index, const float* image, const uint8_t* mask,
                      const std::string& case_id);
    // Checks every declared sample was written (if not: throws, and the writer stays usable),
    // writes the case ids, closes, renames .tmp to the final name.
    void finish();
    int64_t bytes_written() const;  // size of the finished file (after finish())

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

class DatasetReader {
   public:
    // Opens read-only and validates format_version, layout, dtypes and shapes of every split;
    // throws std::runtime_error naming the file and the problem. Keeps the datasets open with a
    // chunk cache of one sample each (so up to one decompressed sample is held in memory), and
    // reads every split's case ids into memory.
    explicit DatasetReader(const std::string& path);
    ~DatasetReader();
    DatasetReader(const DatasetReader&) = delete;
    DatasetReader& operator=(const DatasetReader&) = delete;

    const std::string& path() const;
    const DatasetAttributes& attributes() const;
    const std::vector<int64_t>& spatial() const;  // D,H,W or H,W
    int channels() const;
    bool has_split(const std::string& split) const;
    int64_t count(const std::string& split) const;  // 0 if absent
    // image: C x spatial floats; masks: regions.size() x spatial floats, 1 where the voxel's label
    // is in the region (label_regions.h). Throws for an absent split, an index outside [0, count),
    // a mask value above the file's max_mask_label, or regions the file's masks cannot tell
    // (check_regions). Safe to call from several threads (an internal mutex; HDF5 serializes
    // calls anyway).
    void read_sample(const std::string& split, int64_t index, float* image, float* masks,
                     const Regions& regions = whole_tumour_region()) const;
    // The same with the mask as its label map (spatial bytes), for scoring.
    void read_labels(const std::string& split, int64_t index, float* image, uint8_t* labels) const;
    // Throws UsageError naming --labels and the file when a region other than the whole tumour is
    // asked of binary masks (format version 1, or Intel's .npy data).
    void check_regions(const Regions& regions) const;
    std::string case_id(const std::string& split, int64_t index) const;
    // What the chunk caches hold once a sample was read: one decompressed image and mask chunk
    // (memory estimates count it for every open reader).
    int64_t sample_cache_bytes() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace unet
