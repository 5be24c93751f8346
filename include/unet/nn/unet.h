// The UNet, 2D or 3D, on oneDNN layers.
//
// Architecture (C_l = base_filters * 2^l, l = 0..depth; depth = number of poolings):
//   enc{l}, l = 0..depth    block: conv1 3x3(x3) -> norm1 + ReLU -> conv2 -> norm2 + ReLU
//                           (enc{depth} is the bottleneck). enc{l} output is the skip of level l;
//                           levels l < depth are then max-pooled (2).
//   dropout                 if rate > 0: after the blocks enc{depth-1} and enc{depth}.
//   up{l}, l = depth-1..0   transposed: ConvTranspose k2 s2, C_{l+1} -> C_l ("up{l}.weight");
//                           nearest / linear: parameter-free x2 resampling, keeps C_{l+1}.
//   dec{l}                  block on concat([up{l} output, skip l]) -> C_l.
//   out                     1x1 conv C_0 -> out_channels, sigmoid.
// With norm = none, the ReLU is fused into the convolution. Group norm uses
// gcd(norm_groups, C) groups. Parameter names match a PyTorch state_dict of the same network
// (tests/reference/torch_unet.py): enc0.conv1.weight, enc0.norm1.weight, up0.weight, out.bias, ...
//
// Tensors: input N x in_channels x [D x] H x W, output N x out_channels x ..., both plain
// (nc[d]hw) float; every spatial size must be divisible by 2^depth. Inside, layouts are what
// oneDNN picks; the only reorders are at the input and at the weight I/O.
//
// All primitives and activation buffers are built once per batch size (a "plan") and reused.
// forward()/backward() must alternate (backward uses the last training forward's state).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <tuple>
#include <memory>
#include <string>

#include "unet/core/param_store.h"
#include "unet/nn/norm.h"
#include "unet/nn/unet_config.h"

namespace unet {

struct MemoryEstimate {
    int64_t activation_bytes = 0;  // activations, their gradients, workspaces (one batch size)
    int64_t parameter_bytes = 0;   // parameters, gradients and the layers' reordered copies
    int64_t optimizer_bytes = 0;   // Adam moments (x3 with amsgrad) or SGD momentum
    int64_t scratchpad_bytes = 0;  // oneDNN's scratchpad, shared by all primitives: the largest one's
    int64_t total() const { return activation_bytes + parameter_bytes + optimizer_bytes + scratchpad_bytes; }
};

class UNet {
   public:
    explicit UNet(const UNetConfig& config);  // validates, registers and He-initialises params
    ~UNet();
    UNet(const UNet&) = delete;
    UNet& operator=(const UNet&) = delete;

    const UNetConfig& config() const { return config_; }
    // Registers the parameters and buffers of a UNet of `config` in `store` (not finalized), in
    // the model's flat layout, without building any layer: the parameter server's view of the
    // model. `unit_start`, if given, receives each unit's first offset.
    static void register_params(ParamStore& store, const UNetConfig& config,
                                std::map<std::string, int64_t>* unit_start = nullptr);
    ParamStore& store() { return store_; }
    // For a model that will only run eval-mode forwards (unet_predict, unet_visualize): frees the
    // gradient buffer, as large as the parameters. Training forwards and backward() are refused after.
    void drop_gradients() { store_.drop_grads(); }
    // Frees the inference plans (their activation buffers; a later forward builds them again,
    // its primitives from oneDNN's cache). Between the cases of unet_predict: a whole-volume plan
    // is about a gigabyte, and kept, it would sit beside the next case's volume while that is read.
    void release_inference_plans();
    const ParamStore& store() const { return store_; }

    // Re-initialises every parameter from `seed` (He normal for convolutions, zero biases,
    // gamma 1, beta 0, running mean 0, running var 1).
    void initialize(uint64_t seed);
    // The same on any finalized store with a UNet's layout (register_params).
    static void initialize_params(ParamStore& store, uint64_t seed);

    // Runs the network on `batch` samples of `spatial` size; returns the output probabilities
    // (plain layout, batch * out_channels * prod(spatial) floats, valid until the next call).
    // `step` selects the dropout masks. `input` is read in place: keep it unchanged until
    // backward() has run.
    const float* forward(const float* input, int64_t batch, const Dims& spatial, bool training,
                         uint64_t step = 0);
    // An eval-mode forward in two steps, for a caller that wants its input's memory back before
    // the network runs (a whole volume is 140 MB), or that can write the input where the network
    // reads it. An inference plan has an input buffer of its own in its first convolution's layout
    // (channels-last: batch x spatial x channels); a training plan reads the caller's in place.
    //  - stage_input() copies `input` (plain) there and returns true, after which the caller may
    //    free `input`; without such a buffer `input` stays read in place and it returns false.
    //  - staging_area() returns that buffer for the caller to fill, or nullptr (then use forward()).
    // forward_staged() then runs the forward and returns the output (plain layout), written to
    // `output` when given, else valid until the next forward.
    bool stage_input(const float* input, int64_t batch, const Dims& spatial);
    float* staging_area(int64_t batch, const Dims& spatial);
    const float* forward_staged(float* output = nullptr);

    // Called during backward() each time a further part of the network is done: from then on
    // every gradient at flat offset >= ready_from holds its final value for this step, and the
    // parameters there are no longer read by this step. Lets the caller send gradients (and take
    // new parameters) while backward computes the rest; it is also where MPI progress is driven.
    using GradientsReady = std::function<void(int64_t ready_from)>;
    // Gradient of the loss w.r.t. the output probabilities (plain layout) -> store().grads()
    // (overwritten, not accumulated).
    void backward(const float* diff_output, const GradientsReady& ready = {});

    // Nominal training FLOPs per sample (forward + backward-data + backward-weights of every
    // convolution; the first layer has no backward-data).
    double train_flops_per_sample(const Dims& spatial);
    MemoryEstimate estimate_memory(int64_t batch, const Dims& spatial, int optimizer_state_copies);
    // Number of layers that reorder their input (1 = only the network input; with Winograd, one
    // more where the channels-last chain enters the blocked one).
    int input_reorders(int64_t batch, const Dims& spatial);
    int winograd_layers(int64_t batch, const Dims& spatial);

    // The primitives and buffers of one (batch, input size); defined in unet.cpp, where the helpers
    // that build it live.
    struct Plan;

   private:
    Plan& plan_for(int64_t batch, const Dims& spatial, bool inference = false);
    Plan& eval_plan(int64_t batch, const Dims& spatial);  // the training plan of that size, or an inference one
    const float* run_forward(Plan& P, bool training, uint64_t step);  // from P's input (staged or in place)

    UNetConfig config_;
    ParamStore store_;
    std::map<std::tuple<int64_t, Dims, bool>, std::unique_ptr<Plan>> plans_;  // (batch, size, inference)
    Plan* last_ = nullptr;
    Plan* staged_ = nullptr;  // the plan stage_input() prepared
    // Each unit's ("enc0", "up1", "out", ...) first flat offset, recorded as it is registered.
    // Units are registered in the reverse of the order backward() finishes them, so each finished
    // unit moves the ready frontier down to its first offset.
    std::map<std::string, int64_t> unit_start_;
};

}  // namespace unet
