// Batches from a prepared HDF5 dataset, sharded over workers and prefetched on a background
// thread.
//
// Order: one global permutation of the split per epoch, from (seed, epoch). Global batch k covers
// permutation positions [k B, (k + 1) B) (B = --batch_size, global), wrapping around to the start
// for the last batch, so every batch is full and steps_per_epoch() = ceil(N / B) on every rank.
// Worker r of W takes a contiguous slice of each global batch: B / W samples, plus one for the
// first B % W workers. The shares of all workers are disjoint and cover the batch.
//
// Masks: one channel per region of `regions` (n x regions x spatial, label_regions.h).
// 3D patches (patch non-empty, e.g. 64,64,64): a random crop; with probability fg_fraction it is
// centred on a random voxel of any of the regions (foreground oversampling). Augmentation (augment = true): a
// flip on each spatial axis with probability 1/2, and per channel an intensity scale in [0.9, 1.1]
// and shift in [-0.1, 0.1]. All randomness of a sample comes from (seed, epoch, its global
// position), so it does not depend on the number of workers or on timing.
//
// next() blocks only when the prefetch thread is behind; the time spent blocked is the data wait.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "unet/core/dims.h"
#include "unet/data/batch.h"
#include "unet/data/label_regions.h"

namespace unet {

struct LoaderConfig {
    std::string path;
    std::string split = "train";
    int64_t global_batch = 8;
    int rank = 0, world = 1;  // this worker's index and the number of workers
    uint64_t seed = 42;
    bool shuffle = true;
    Dims patch;               // empty: the full sample
    float fg_fraction = 0.33f;
    bool augment = false;
    int prefetch = 2;         // batches read ahead
    bool continuous = true;   // read ahead into the next epoch (off for one-pass validation)
    Regions regions = whole_tumour_region();  // one mask channel per region (--labels)
};

class Loader {
   public:
    // Opens and validates the dataset (throws std::runtime_error / UsageError naming the file or
    // flag: missing split, patch larger than the volume or of the wrong rank).
    explicit Loader(const LoaderConfig& config);
    ~Loader();
    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;

    int64_t samples() const;
    int64_t steps_per_epoch() const;
    int64_t local_batch() const;  // this worker's share of each global batch
    int channels() const;
    Dims sample_spatial() const;  // spatial size of a batch (the patch, or the full sample)
    // The most this loader holds at once: the batches read ahead, the one being cut, the one the
    // caller holds, the full sample they are cut from and the reader's chunk cache.
    int64_t memory_bytes() const;

    // Starts reading `epoch` in the background; if the previous epoch was consumed to its end and
    // the reader has gone on into `epoch` (continuous), keeps what it read ahead.
    void start_epoch(int epoch);
    // The next batch of the epoch; false after the last one.
    bool next(Batch& out);
    double wait_seconds() const;  // total time next() spent blocked since start_epoch()

    // The global positions worker `rank` of `world` reads in global batch `step`:
    // step * B + offset + k; the sample is permutation[position % samples] (exposed for tests).
    static std::vector<int64_t> share(int64_t samples, int64_t global_batch, int rank, int world, int64_t step);
    // The global order of `epoch`: 0..n-1, shuffled from (seed, epoch) when `shuffle`.
    static std::vector<int64_t> permutation(int64_t n, uint64_t seed, int epoch, bool shuffle);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace unet
