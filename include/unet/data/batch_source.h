// Where a run's batches come from, behind one interface: a prepared HDF5 dataset (Loader) or the
// generated in-memory set (toy_data.h), both with the Loader's order and sharding rules (one
// global permutation per (seed, epoch), every worker its slice of each global batch, the last
// batch wrapping around), so a run on generated data behaves like one on a file.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

#include "unet/data/batch.h"
#include "unet/data/loader.h"

namespace unet {

class BatchSource {
   public:
    virtual ~BatchSource() = default;
    virtual int64_t samples() const = 0;          // in the split (not counting the wrapped tail)
    virtual int64_t steps_per_epoch() const = 0;  // ceil(samples / global batch)
    virtual void start_epoch(int epoch) = 0;
    virtual bool next(Batch& b) = 0;              // this worker's share of the next global batch
    virtual double wait_seconds() const = 0;      // time next() spent blocked since start_epoch
    virtual int64_t memory_bytes() const = 0;     // the most it holds at once
};

class LoaderSource : public BatchSource {
   public:
    explicit LoaderSource(const LoaderConfig& c) : loader_(c) {}
    int64_t samples() const override { return loader_.samples(); }
    int64_t steps_per_epoch() const override { return loader_.steps_per_epoch(); }
    void start_epoch(int epoch) override { loader_.start_epoch(epoch); }
    bool next(Batch& b) override { return loader_.next(b); }
    double wait_seconds() const override { return loader_.wait_seconds(); }
    int64_t memory_bytes() const override { return loader_.memory_bytes(); }
    const Loader& loader() const { return loader_; }

   private:
    Loader loader_;
};

// Samples held in memory (e.g. make_toy_batch), in the Loader's order and batch rules.
class ToySource : public BatchSource {
   public:
    ToySource(Batch data, int64_t global_batch, uint64_t seed, bool shuffle, int rank = 0, int world = 1);
    int64_t samples() const override { return data_.n; }
    int64_t steps_per_epoch() const override { return (data_.n + batch_ - 1) / batch_; }
    void start_epoch(int epoch) override;
    bool next(Batch& b) override;
    double wait_seconds() const override { return 0; }
    int64_t memory_bytes() const override {  // the samples and two batches cut from them
        return int64_t(4 * (data_.images.size() + data_.masks.size())) * (data_.n + 2 * batch_) / std::max<int64_t>(1, data_.n);
    }

   private:
    Batch data_;
    int64_t batch_;
    uint64_t seed_;
    bool shuffle_;
    int rank_, world_;
    std::vector<int64_t> order_;
    int64_t step_ = 0;
};

}  // namespace unet
