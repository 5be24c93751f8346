#include "unet/data/batch_source.h"

#include "unet/data/toy_data.h"

namespace unet {

ToySource::ToySource(Batch data, int64_t global_batch, uint64_t seed, bool shuffle, int rank, int world)
    : data_(std::move(data)), batch_(global_batch), seed_(seed), shuffle_(shuffle), rank_(rank), world_(world) {}

void ToySource::start_epoch(int epoch) {
    order_ = Loader::permutation(data_.n, seed_, epoch, shuffle_);
    step_ = 0;
}

bool ToySource::next(Batch& b) {
    if (step_ >= steps_per_epoch()) return false;
    std::vector<int64_t> idx;
    for (int64_t pos : Loader::share(data_.n, batch_, rank_, world_, step_)) idx.push_back(order_[size_t(pos % data_.n)]);
    take_samples(data_, idx, b);
    ++step_;
    return true;
}

}  // namespace unet
