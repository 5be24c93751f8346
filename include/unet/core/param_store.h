// All trainable parameters of a model in ONE flat float buffer, gradients in a second buffer of
// the same layout (llm.c style). The flat buffers are what the optimizer updates, what the
// parameter server moves as a single MPI message and what a checkpoint stores.
//
// Each tensor is a named view (offset, shape). Weights are stored in PyTorch's order (Conv:
// O,I,[D],H,W; ConvTranspose: I,O,[D],H,W), so a state_dict maps onto the buffer name by name.
// Layers reorder from here into whatever layout their primitives prefer.
//
// Non-trainable state (batch-norm running statistics) lives in a third flat buffer with its own
// views (add_buffer / buffers()); it is checkpointed but never sent through the optimizer.
//
// Views must all be added before finalize(); finalize() allocates and zero-fills both buffers.
// Pointers returned by params()/grads() stay valid for the store's lifetime.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unet/core/aligned.h"
#include "unet/core/dims.h"

namespace unet {

struct ParamView {
    std::string name;
    int64_t offset = 0;
    int64_t count = 0;
    Dims shape;
};

class ParamStore {
   public:
    // Registers a tensor; returns its index. Names must be unique.
    int add(const std::string& name, const Dims& shape);
    int add_buffer(const std::string& name, const Dims& shape);
    void finalize();
    bool finalized() const { return finalized_; }

    const std::vector<ParamView>& views() const { return views_; }
    const ParamView& view(int index) const { return views_.at(size_t(index)); }
    int find(const std::string& name) const;  // -1 if absent

    int64_t size() const { return total_; }
    float* params() { return params_.data(); }
    const float* params() const { return params_.data(); }
    float* grads() { return grads_.data(); }
    const float* grads() const { return grads_.data(); }
    float* param(int index) { return params_.data() + view(index).offset; }
    float* grad(int index) { return grads_.empty() ? nullptr : grads_.data() + view(index).offset; }
    // Frees the gradient buffer of a model that will only run forwards (unet_predict): grad() is
    // then null, and has_grads() false.
    void drop_grads() { grads_ = AlignedVector<float>(); }
    bool has_grads() const { return !grads_.empty() || total_ == 0; }

    const std::vector<ParamView>& buffer_views() const { return buffer_views_; }
    int find_buffer(const std::string& name) const;  // -1 if absent
    int64_t buffers_size() const { return buffers_total_; }
    float* buffers() { return buffers_.data(); }
    const float* buffers() const { return buffers_.data(); }
    float* buffer(int index) { return buffers_.data() + buffer_views_.at(size_t(index)).offset; }

    // Number of trainable scalars (sum of view sizes, without alignment padding).
    int64_t parameter_count() const;
    void zero_grads();

   private:
    std::vector<ParamView> views_, buffer_views_;
    AlignedVector<float> params_, grads_, buffers_;
    int64_t total_ = 0, buffers_total_ = 0;
    bool finalized_ = false;
};

}  // namespace unet
