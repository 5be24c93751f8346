// The prepared dataset: one HDF5 file that everything after unet_prepare reads.
//
// Format version 1 (attribute "format_version" = 1 on the root group):
//   root attributes  format_version (int), layout ("NCDHW" for 3D, "NCHW" for 2D), mode ("3d"|"2d"),
//                    channels (int), normalization, crop, split_seed (int64), source, labels (JSON)
//   /<split>/images  float32 [N, C, D, H, W] (2D: [N, C, H, W]), one chunk per sample,
//                    shuffle + deflate(4)
//   /<split>/masks   uint8   [N, 1, D, H, W] (2D: [N, 1, H, W]), same chunking, values 0/1
//   /<split>/case_ids  variable-length strings [N] (2D: the case each slice came from)
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

namespace unet {

constexpr int kDatasetFormatVersion = 1;

struct DatasetAttributes {
    std::string mode = "3d";  // "3d" | "2d"
    int channels = 4;
    std::string normalization = "z-score per channel over non-zero (brain) voxels";
    std::string crop;
    int64_t split_seed = 0;
    std::string source;
    std::string labels = "{}";
};

class DatasetWriter {
   public:
    // spatial: D,H,W (3d) or H,W (2d). Creates "<path>.tmp" (truncating it).
    DatasetWriter(const std::string& path, const DatasetAttributes& attrs, const std::vector<int64_t>& spatial);
    ~DatasetWriter();  // without finish(): closes and removes the temporary file
    DatasetWriter(const DatasetWriter&) = delete;
    DatasetWriter& operator=(const DatasetWriter&) = delete;

    // Declares a split with exactly `count` samples (count may be 0: nothing is created).
    void add_split(const std::string& split, int64_t count);
    // image: C x spatial floats; mask: spatial bytes (0/1; any other value throws). Throws for a
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
    // image: C x spatial floats; mask: spatial floats (0/1). Throws for an absent split, an index
    // outside [0, count) or a mask value other than 0/1. Safe to call from several threads (an
    // internal mutex; HDF5 serializes calls anyway).
    void read_sample(const std::string& split, int64_t index, float* image, float* mask) const;
    std::string case_id(const std::string& split, int64_t index) const;
    // What the chunk caches hold once a sample was read: one decompressed image and mask chunk
    // (memory estimates count it for every open reader).
    int64_t sample_cache_bytes() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace unet
