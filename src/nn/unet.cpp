#include "unet/nn/unet.h"

#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>
#include <vector>

#include "unet/core/check.h"
#include "unet/core/rng.h"
#include "unet/nn/concat.h"
#include "unet/nn/conv.h"
#include "unet/nn/dropout.h"
#include "unet/nn/pool.h"
#include "unet/nn/resample.h"
#include "unet/nn/slab_deconv.h"

namespace unet {

Upsampling parse_upsampling(const std::string& name) {
    if (name == "transposed") return Upsampling::transposed;
    if (name == "nearest") return Upsampling::nearest;
    if (name == "linear") return Upsampling::linear;
    throw UsageError("--upsampling: expected transposed, nearest or linear, got '" + name + "'");
}

const char* upsampling_name(Upsampling u) {
    switch (u) {
        case Upsampling::transposed: return "transposed";
        case Upsampling::nearest: return "nearest";
        case Upsampling::linear: return "linear";
    }
    return "?";
}

void UNetConfig::validate(const Dims& spatial) const {
    auto bad = [](const std::string& m) { throw UsageError(m); };
    if (dims != 2 && dims != 3) bad("--dims: expected 2 or 3, got " + std::to_string(dims));
    if (in_channels < 1) bad("--in_channels: expected at least 1, got " + std::to_string(in_channels));
    if (out_channels < 1) bad("--out_channels: expected at least 1, got " + std::to_string(out_channels));
    if (base_filters < 1) bad("--filters: expected at least 1, got " + std::to_string(base_filters));
    if (depth < 1 || depth > 8) bad("--depth: expected 1 to 8 poolings, got " + std::to_string(depth));
    if (norm == NormKind::group && norm_groups < 1)
        bad("--norm_groups: expected at least 1, got " + std::to_string(norm_groups));
    if (!(dropout >= 0.f && dropout < 1.f)) bad("--dropout: expected a rate in [0, 1), got " + std::to_string(dropout));
    if (spatial.empty()) return;
    if (int(spatial.size()) != dims)
        bad("--input_size: expected " + std::to_string(dims) + " sizes for --dims " + std::to_string(dims) +
            ", got " + std::to_string(spatial.size()));
    const int64_t multiple = int64_t(1) << depth;
    for (auto s : spatial)
        if (s < multiple || s % multiple != 0)
            bad("--input_size: every size must be a positive multiple of 2^depth = " + std::to_string(multiple) +
                " (depth " + std::to_string(depth) + "), got " + std::to_string(s));
}

namespace {

std::string level_name(const char* prefix, int level) { return prefix + std::to_string(level); }

int64_t group_count(const UNetConfig& c, int64_t channels) { return std::gcd(c.norm_groups, channels); }

// Registers / builds "conv1 -> norm1+ReLU -> conv2 -> norm2+ReLU" named <prefix>.conv1 etc.
void register_block(ParamStore& s, const UNetConfig& c, const std::string& prefix, int64_t in, int64_t out) {
    const PostOp post = c.norm == NormKind::none ? PostOp::relu : PostOp::none;
    ConvLayer::register_params(s, prefix + ".conv1", in, {out, 3, post, false}, c.dims);
    NormRelu::register_params(s, prefix + ".norm1", out, c.norm);
    ConvLayer::register_params(s, prefix + ".conv2", out, {out, 3, post, false}, c.dims);
    NormRelu::register_params(s, prefix + ".norm2", out, c.norm);
}

}  // namespace

// One conv block's layers and buffers. With norm none the ReLU lives in the conv and
// a1 == t1, a2 == t2; gradients run in place through the norm, so two diff buffers suffice.
struct Block {
    std::unique_ptr<ConvLayer> conv1, conv2;
    // An inference plan's decoder block: conv1 reads the up-sampled tensor, and conv1_skip adds
    // the skip's part of the same convolution (no concatenated tensor).
    std::unique_ptr<ConvLayer> conv1_skip;
    memory skip;
    std::unique_ptr<NormRelu> norm1, norm2;
    std::unique_ptr<Dropout> dropout;
    memory t1, a1, t2, a2;  // conv1 out, block mid, conv2 out, block out
    memory d1, d2;          // gradient of a1 / a2 (and, in place, of t1 / t2)
};

struct Level {  // decoder level
    std::unique_ptr<ConvLayer> up_conv;     // a training plan's transposed convolution
    std::unique_ptr<SlabDeconv> up_slabs;   // an inference plan's
    std::unique_ptr<Resample> up_resample;
    std::unique_ptr<Concat> concat;
    memory up, d_up, cat, d_cat;
};

// Gradient buffers are short-lived in backward, so most share two scratch slots (sized to the
// largest use) instead of one buffer per tensor. Walking backward through a level:
//   out / up-sampling bwd  -> block output gradient d2      (B)
//   block conv2 bwd        reads d2 (B), writes d1          (A)
//   block conv1 bwd        reads d1 (A), writes its input's gradient: concat or pooled (B)
//   concat split           reads B, writes the up-sampling gradient (A) and the skip gradient
//   pool bwd               reads B, writes A, which is added into the skip gradient
// so each slot is read before it is written again. In forward, A also holds the up-sampled
// tensor until concat has copied it (neither transposed convolution nor resampling backward reads
// its output). Only the skip gradients (encoder blocks below the bottleneck) live across levels
// and keep their own buffers.
//
// An inference plan (a forward in eval mode with no training plan of that size: unet_predict,
// unet_visualize) has no gradient buffers at all, and its forward tensors recycle three slots by
// liveness, so only the skip tensors (the encoder blocks' outputs) have buffers of their own.
// Its decoder never concatenates: the first convolution of a decoder block is split over its
// inputs, the up-sampled tensor's channels and then the skip's, adding into one output.
//   encoder  input/pooled (C) -> conv1 -> t1 (B) [-> norm1 -> a1 (A)] -> conv2 -> t2 (C with a
//            norm, else the kept output) [-> norm2 -> a2 (kept)] -> pool -> pooled (C)
//   decoder  below (C) -> up (A; a deconvolution runs in slabs, src/nn/slab_deconv.h); up + skip -> conv1 -> t1 (B) [-> norm1 -> a1 (A)]
//            -> conv2 -> t2 (B with a norm, else C) [-> norm2 -> a2 (C)] -> below of the next
//            level; at level 0 the block's output goes to A instead (nothing up-samples after it),
//            so C holds only tensors of the smaller levels, and the network's output.
//   input    the caller's, reordered into the first convolution's layout in A (stage_input).
// Each slot is read for the last time before it is written again.
enum ScratchSlot { kScratchA = 0, kScratchB = 1, kScratchC = 2, kScratchSlots = 3, kOwnBuffer = -1 };

struct UNet::Plan {
    int64_t batch = 0;
    Dims spatial;
    std::vector<Block> enc, dec;      // enc[0..depth], dec[0..depth-1]
    std::vector<std::unique_ptr<MaxPool>> pool;
    std::vector<memory> pooled, d_pooled, d_skip_from_pool;
    std::vector<Level> levels;
    std::unique_ptr<ConvLayer> out_conv;
    memory input, output, d_output;
    // An inference plan's input in the first convolution's layout (channels-last), in slot A,
    // which nothing else uses before that convolution has read it; absent (zero) in training plans,
    // whose first convolution reorders the plain input into a buffer of its own.
    memory staged;
    std::vector<float> plain_output;  // only if the output layout is not plain
    int64_t allocated_bytes = 0;
    double flops_per_sample = 0;
    int reorders = 0;
    int winograd_layers = 0;
    bool training = true;
    bool inference = false;  // built for eval-mode forwards only: no gradient buffers
    uint64_t step = 0;

    std::vector<AlignedBuffer> own_buffers;
    AlignedBuffer scratch[kScratchSlots];
    size_t scratch_bytes[kScratchSlots] = {0, 0, 0};
    std::vector<std::pair<memory, int>> scratch_users;

    memory alloc(const memory::desc& md) {
        allocated_bytes += int64_t(md.get_size());
        own_buffers.emplace_back(md.get_size());
        return memory(md, DnnlContext::get().engine, own_buffers.back().data());
    }
    // A forward tensor: its own buffer, or a slot in an inference plan.
    memory forward_tensor(const memory::desc& md, int slot) { return slot == kOwnBuffer ? alloc(md) : shared(md, slot); }
    // A memory in a shared slot; its handle is set by bind_scratch() once all sizes are known.
    memory shared(const memory::desc& md, int slot) {
        memory m(md, DnnlContext::get().engine, DNNL_MEMORY_NONE);
        scratch_bytes[slot] = std::max(scratch_bytes[slot], md.get_size());
        scratch_users.emplace_back(m, slot);
        return m;
    }
    void bind_scratch() {
        for (int i = 0; i < kScratchSlots; ++i) {
            scratch[i] = AlignedBuffer(scratch_bytes[i]);
            // A training plan's slots start zeroed, as they always have; an inference plan writes
            // every tensor before reading it and leaves its pages to its first forward.
            if (!inference) std::memset(scratch[i].data(), 0, scratch_bytes[i]);
            allocated_bytes += int64_t(scratch_bytes[i]);
        }
        for (auto& [m, slot] : scratch_users) m.set_data_handle(scratch[slot].data());
    }
};

UNet::UNet(const UNetConfig& config) : config_(config) {
    config_.validate();
    register_params(store_, config_, &unit_start_);
    store_.finalize();
    initialize(config_.seed);
}

UNet::~UNet() = default;

void UNet::register_params(ParamStore& store, const UNetConfig& c, std::map<std::string, int64_t>* unit_start) {
    // Each unit's tensors are registered together: its first offset is the store's size before.
    auto unit = [&](const std::string& name) {
        if (unit_start) (*unit_start)[name] = store.size();
        return name;
    };
    int64_t in = c.in_channels;
    for (int l = 0; l <= c.depth; ++l) {
        register_block(store, c, unit(level_name("enc", l)), in, c.filters(l));
        in = c.filters(l);
    }
    for (int l = c.depth - 1; l >= 0; --l) {
        int64_t up_channels = c.filters(l + 1);
        if (c.upsampling == Upsampling::transposed) {
            ConvLayer::register_params(store, unit(level_name("up", l)), c.filters(l + 1),
                                       {c.filters(l), 2, PostOp::none, true}, c.dims);
            up_channels = c.filters(l);
        }
        register_block(store, c, unit(level_name("dec", l)), up_channels + c.filters(l), c.filters(l));
    }
    ConvLayer::register_params(store, unit("out"), c.filters(0), {c.out_channels, 1, PostOp::sigmoid, false}, c.dims);
}

void UNet::initialize(uint64_t seed) { initialize_params(store_, seed); }

void UNet::initialize_params(ParamStore& store_, uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < int(store_.views().size()); ++i) {
        const ParamView& v = store_.view(i);
        float* p = store_.param(i);
        const bool is_bias = v.name.size() > 5 && v.name.compare(v.name.size() - 5, 5, ".bias") == 0;
        const bool is_norm = v.name.find(".norm") != std::string::npos;
        if (is_norm) {
            std::fill(p, p + v.count, is_bias ? 0.f : 1.f);
        } else if (is_bias) {
            std::fill(p, p + v.count, 0.f);
        } else {
            // He normal: std = sqrt(2 / fan_in), fan_in = input channels x kernel taps.
            const bool transposed = v.name.rfind("up", 0) == 0;
            int64_t fan_in = transposed ? v.shape[0] : v.shape[1];
            for (size_t k = 2; k < v.shape.size(); ++k) fan_in *= v.shape[k];
            const float sd = std::sqrt(2.f / float(fan_in));
            for (int64_t k = 0; k < v.count; ++k) p[k] = sd * rng.normal();
        }
    }
    for (const auto& b : store_.buffer_views()) {
        const bool var = b.name.find("running_var") != std::string::npos;
        std::fill(store_.buffers() + b.offset, store_.buffers() + b.offset + b.count, var ? 1.f : 0.f);
    }
}


namespace {

// An inference plan's up-sampling runs in slabs whose buffer of taps stays under this (in L3).
constexpr size_t kUpSlabBytes = size_t(16) << 20;

// What building a plan needs besides the plan itself.
struct PlanContext {
    const UNetConfig& c;
    ParamStore& store;
    bool fused_relu, winograd;
    PostOp post;
};

// Where a block's four forward tensors live (kOwnBuffer or a slot; see the inference plan above).
struct BlockSlots {
    int t1 = kOwnBuffer, a1 = kOwnBuffer, t2 = kOwnBuffer, a2 = kOwnBuffer;
};

BlockSlots block_slots(const UNet::Plan& P, bool encoder, bool fused_relu, int level) {
    if (!P.inference) return {};
    if (encoder) return fused_relu ? BlockSlots{kScratchB, kOwnBuffer, kOwnBuffer, kOwnBuffer}
                                   : BlockSlots{kScratchB, kScratchA, kScratchC, kOwnBuffer};
    const int out = level == 0 ? kScratchA : kScratchC;
    return fused_relu ? BlockSlots{kScratchB, kOwnBuffer, out, kOwnBuffer}
                      : BlockSlots{kScratchB, kScratchA, kScratchB, out};
}

// The norm<k> + ReLU after a convolution's output `t`; returns the stage's output (`t` itself when
// the ReLU is fused into the convolution).
memory build_norm(UNet::Plan& P, const PlanContext& x, std::unique_ptr<NormRelu>& norm, const std::string& name,
                  int k, const memory& t, int64_t out, int slot_a) {
    if (x.fused_relu) return t;
    norm = std::make_unique<NormRelu>(t.get_desc(), x.c.norm, group_count(x.c, out), x.store,
                                      name + ".norm" + std::to_string(k));
    return P.forward_tensor(norm->dst_desc(), slot_a);
}

// conv<k> -> [norm<k> + ReLU] of a block named <prefix>.*: builds the two layers on `src_md`, sets
// `t` to the convolution's output and returns the stage's output (`t` itself when the ReLU is fused).
memory build_stage(UNet::Plan& P, const PlanContext& x, std::unique_ptr<ConvLayer>& conv, std::unique_ptr<NormRelu>& norm,
                   const std::string& name, int k, const memory::desc& src_md, int64_t out, bool need_diff_src,
                   int slot_t, int slot_a, memory& t) {
    const std::string n = std::to_string(k);
    conv = std::make_unique<ConvLayer>(src_md, ConvSpec{out, 3, x.post, false, x.winograd, P.inference}, x.store,
                                       name + ".conv" + n, need_diff_src);
    P.reorders += conv->reorders_in_use();
    P.winograd_layers += conv->uses_winograd();
    t = P.forward_tensor(conv->dst_desc(), slot_t);
    return build_norm(P, x, norm, name, k, t, out, slot_a);
}

// An inference decoder's conv1 -> [norm1 + ReLU] on the up-sampled tensor (`up_md`) and the skip
// without concatenating them: conv1 convolves the up-sampled channels of the weight, conv1_skip
// adds the skip's channels into the same output and applies the post-op to the sum.
memory build_split_stage(UNet::Plan& P, const PlanContext& x, Block& b, const std::string& name,
                         const memory::desc& up_md, const memory& skip, int64_t out, const BlockSlots& slot) {
    const int64_t up_c = up_md.dims()[1], weight_in = up_c + skip.get_desc().dims()[1];
    ConvSpec up_part{out, 3, PostOp::none, false, false, true};
    up_part.weight_in_channels = weight_in;
    b.conv1 = std::make_unique<ConvLayer>(up_md, up_part, x.store, name + ".conv1");
    ConvSpec skip_part{out, 3, x.post, false, false, true};
    skip_part.weight_in_channels = weight_in;
    skip_part.in_offset = up_c;
    skip_part.accumulate = true;
    skip_part.dst_layout = b.conv1->dst_desc();
    b.conv1_skip = std::make_unique<ConvLayer>(skip.get_desc(), skip_part, x.store, name + ".conv1");
    P.reorders += b.conv1->reorders_in_use() + b.conv1_skip->reorders_in_use();
    b.skip = skip;
    b.t1 = P.forward_tensor(b.conv1->dst_desc(), slot.t1);
    return build_norm(P, x, b.norm1, name, 1, b.t1, out, slot.a1);
}

// conv1 -> norm1 + ReLU -> conv2 -> norm2 + ReLU named <prefix>.*, on `src_md` (and, for an
// inference decoder block, on `skip` too: src_md is then the up-sampled tensor's).
void build_block(UNet::Plan& P, const PlanContext& x, Block& b, const std::string& prefix, const memory::desc& src_md,
                 int64_t out, bool need_diff_src, bool own_output_grad, bool encoder, int level,
                 const memory* skip = nullptr) {
    const BlockSlots slot = block_slots(P, encoder, x.fused_relu, level);
    b.a1 = skip ? build_split_stage(P, x, b, prefix, src_md, *skip, out, slot)
                : build_stage(P, x, b.conv1, b.norm1, prefix, 1, src_md, out, need_diff_src, slot.t1, slot.a1, b.t1);
    b.a2 = build_stage(P, x, b.conv2, b.norm2, prefix, 2, b.a1.get_desc(), out, true, slot.t2, slot.a2, b.t2);
    if (P.inference) return;  // no gradients; FLOPs are counted by training plans
    b.d1 = P.shared(b.a1.get_desc(), kScratchA);
    b.d2 = own_output_grad ? P.alloc(b.a2.get_desc()) : P.shared(b.a2.get_desc(), kScratchB);
    P.flops_per_sample += (3 * b.conv1->forward_flops() - (need_diff_src ? 0 : b.conv1->forward_flops()) +
                           3 * b.conv2->forward_flops()) / double(P.batch);
}

// The encoder blocks, pools and dropouts, from the (plain) network input.
void build_encoder(UNet::Plan& P, const PlanContext& x) {
    const UNetConfig& c = x.c;
    P.enc.resize(size_t(c.depth + 1));
    P.pool.resize(size_t(c.depth));
    P.pooled.resize(size_t(c.depth));
    P.d_pooled.resize(size_t(c.depth));
    memory::desc src_md = P.staged ? P.staged.get_desc() : P.input.get_desc();
    for (int l = 0; l <= c.depth; ++l) {
        Block& b = P.enc[size_t(l)];
        build_block(P, x, b, level_name("enc", l), src_md, c.filters(l), l > 0, l < c.depth, true, l);
        if (c.dropout > 0.f && l >= c.depth - 1)
            b.dropout = std::make_unique<Dropout>(b.a2.get_desc(), c.dropout, c.seed, uint64_t(l + 1));
        if (l == c.depth) break;
        P.pool[size_t(l)] = std::make_unique<MaxPool>(b.a2.get_desc());
        P.pooled[size_t(l)] = P.forward_tensor(P.pool[size_t(l)]->dst_desc(), P.inference ? kScratchC : kOwnBuffer);
        if (!P.inference) {
            P.d_pooled[size_t(l)] = P.shared(P.pool[size_t(l)]->dst_desc(), kScratchB);
            P.d_skip_from_pool.push_back(P.shared(b.a2.get_desc(), kScratchA));
        }
        src_md = P.pooled[size_t(l)].get_desc();
    }
}

// The decoder levels (up-sampling, concat, block) and the output convolution.
void build_decoder(UNet::Plan& P, const PlanContext& x) {
    const UNetConfig& c = x.c;
    P.dec.resize(size_t(c.depth));
    P.levels.resize(size_t(c.depth));
    memory below = P.enc[size_t(c.depth)].a2;
    for (int l = c.depth - 1; l >= 0; --l) {
        Level& L = P.levels[size_t(l)];
        if (c.upsampling == Upsampling::transposed && P.inference) {
            L.up_slabs = std::make_unique<SlabDeconv>(below.get_desc(), ConvSpec{c.filters(l), 2, PostOp::none, true, false, true},
                                                      x.store, level_name("up", l), kUpSlabBytes);
            P.reorders += L.up_slabs->reorders_in_use();
            L.up = P.shared(L.up_slabs->dst_desc(), kScratchA);
        } else if (c.upsampling == Upsampling::transposed) {
            L.up_conv = std::make_unique<ConvLayer>(below.get_desc(), ConvSpec{c.filters(l), 2, PostOp::none, true, false, false},
                                                    x.store, level_name("up", l));
            P.reorders += L.up_conv->reorders_in_use();
            L.up = P.shared(L.up_conv->dst_desc(), kScratchA);
            P.flops_per_sample += 3 * L.up_conv->forward_flops() / double(P.batch);
        } else {
            L.up_resample = std::make_unique<Resample>(
                below.get_desc(), c.upsampling == Upsampling::nearest ? ResampleMode::nearest : ResampleMode::linear);
            L.up = P.shared(L.up_resample->dst_desc(), kScratchA);
        }
        if (P.inference) {
            build_block(P, x, P.dec[size_t(l)], level_name("dec", l), L.up.get_desc(), c.filters(l), true, false,
                        false, l, &P.enc[size_t(l)].a2);
            below = P.dec[size_t(l)].a2;
            continue;
        }
        L.concat = std::make_unique<Concat>(L.up.get_desc(), P.enc[size_t(l)].a2.get_desc());
        L.cat = P.alloc(L.concat->dst_desc());
        L.d_up = P.shared(L.up.get_desc(), kScratchA);
        L.d_cat = P.shared(L.cat.get_desc(), kScratchB);
        build_block(P, x, P.dec[size_t(l)], level_name("dec", l), L.cat.get_desc(), c.filters(l), true, false, false, l);
        below = P.dec[size_t(l)].a2;
    }
    P.out_conv = std::make_unique<ConvLayer>(below.get_desc(), ConvSpec{c.out_channels, 1, PostOp::sigmoid, false, false, P.inference},
                                             x.store, "out");
    P.reorders += P.out_conv->reorders_in_use();
    P.flops_per_sample += 3 * P.out_conv->forward_flops() / double(P.batch);
}

}  // namespace

void UNet::release_inference_plans() {
    for (auto it = plans_.begin(); it != plans_.end();) it = it->second->inference ? plans_.erase(it) : std::next(it);
}

UNet::Plan& UNet::eval_plan(int64_t batch, const Dims& spatial) {
    auto it = plans_.find(std::make_tuple(batch, spatial, false));
    return it != plans_.end() ? *it->second : plan_for(batch, spatial, true);
}

UNet::Plan& UNet::plan_for(int64_t batch, const Dims& spatial, bool inference) {
    auto key = std::make_tuple(batch, spatial, inference);
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;
    config_.validate(spatial);
    UNET_CHECK(batch >= 1, "batch " << batch);
    UNET_CHECK(inference || store_.has_grads(), "a training plan on a model whose gradients were dropped");
    const UNetConfig& c = config_;
    auto p = std::make_unique<Plan>();
    Plan& P = *p;
    P.batch = batch;
    P.spatial = spatial;
    P.inference = inference;
    P.training = !inference;
    const bool fused_relu = c.norm == NormKind::none;
    // Winograd kernels are blocked-only. Mixing blocked tensors with channels-last ones of fewer
    // than 16 channels sends oneDNN 2.6 to reference kernels (deconvolution, concat), so Winograd
    // is used only when every level has a 16-channel multiple.
    const PlanContext x{c, store_, fused_relu, c.winograd && c.dims == 2 && c.base_filters % 16 == 0,
                        fused_relu ? PostOp::relu : PostOp::none};
    // The caller's input buffer is used in place (the first convolution reorders it into its own).
    P.input = memory(f32_desc(act_dims(batch, c.in_channels, spatial), plain_tag(c.dims + 2)),
                     DnnlContext::get().engine, DNNL_MEMORY_NONE);
    const memory::desc first_layer_md = conv_data_desc(P.input.get_desc().dims());
    if (inference && first_layer_md.data.format_kind == dnnl_blocked && first_layer_md != P.input.get_desc())
        P.staged = P.shared(first_layer_md, kScratchA);
    build_encoder(P, x);
    build_decoder(P, x);
    // An inference plan's output goes to slot C: at level 0 it holds nothing (see above).
    P.output = P.forward_tensor(P.out_conv->dst_desc(), inference ? kScratchC : kOwnBuffer);
    if (!inference) P.d_output = P.alloc(P.output.get_desc());
    const memory::desc plain_out = f32_desc(P.output.get_desc().dims(), plain_tag(c.dims + 2));
    if (P.output.get_desc() != plain_out) P.plain_output.resize(size_t(product(plain_out.dims())));
    P.bind_scratch();
    return *(plans_[key] = std::move(p));
}

// dst += src, element-wise over two buffers of one layout.
static void add_into(const memory& dst, const memory& src) {
    float* d = static_cast<float*>(dst.get_data_handle());
    const float* x = static_cast<const float*>(src.get_data_handle());
    const int64_t n = int64_t(dst.get_desc().get_size() / sizeof(float));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) d[i] += x[i];
}

static void block_forward(Block& b, const memory& src, bool training, uint64_t step) {
    b.conv1->forward(src, b.t1);
    if (b.conv1_skip) b.conv1_skip->forward(b.skip, b.t1);
    if (b.norm1) b.norm1->forward(b.t1, b.a1, training);
    b.conv2->forward(b.a1, b.t2);
    if (b.norm2) b.norm2->forward(b.t2, b.a2, training);
    if (b.dropout) b.dropout->forward(b.a2, b.a2, step, training);
}

// Overwrites b.d2 (incoming gradient, clobbered) and writes the gradient of src into diff_src.
static void block_backward(Block& b, const memory& src, const memory& diff_src) {
    if (b.dropout) b.dropout->backward(b.d2, b.d2);
    if (b.norm2) b.norm2->backward(b.t2, b.a2, b.d2, b.d2);
    b.conv2->backward(b.a1, b.t2, b.d2, b.d1);
    if (b.norm1) b.norm1->backward(b.t1, b.a1, b.d1, b.d1);
    b.conv1->backward(src, b.t1, b.d1, diff_src);
}

const float* UNet::forward(const float* input, int64_t batch, const Dims& spatial, bool training, uint64_t step) {
    // An eval-mode forward runs on the training plan of its size when there is one (validation
    // during training costs no memory), else on an inference plan.
    Plan& P = training ? plan_for(batch, spatial) : eval_plan(batch, spatial);
    P.input.set_data_handle(const_cast<float*>(input));
    if (P.staged) reorder_now(P.input, P.staged);
    return run_forward(P, training, step);
}

bool UNet::stage_input(const float* input, int64_t batch, const Dims& spatial) {
    Plan& P = eval_plan(batch, spatial);
    staged_ = &P;
    P.input.set_data_handle(const_cast<float*>(input));
    if (!P.staged) return false;
    reorder_now(P.input, P.staged);
    P.input.set_data_handle(nullptr);  // the caller may free it now
    return true;
}

float* UNet::staging_area(int64_t batch, const Dims& spatial) {
    Plan& P = eval_plan(batch, spatial);
    if (!P.staged) return nullptr;
    staged_ = &P;
    return static_cast<float*>(P.staged.get_data_handle());
}

const float* UNet::forward_staged(float* output) {
    UNET_CHECK(staged_, "forward_staged() without stage_input() or staging_area()");
    Plan& P = *staged_;
    staged_ = nullptr;
    if (!output) return run_forward(P, /*training=*/false, 0);
    if (!P.plain_output.empty()) {  // the output is reordered into the plain layout anyway
        const float* y = run_forward(P, /*training=*/false, 0);
        std::copy(y, y + P.plain_output.size(), output);
        return output;
    }
    // The output convolution writes the caller's buffer: no copy out of the plan.
    void* own = P.output.get_data_handle();
    P.output.set_data_handle(output);
    run_forward(P, /*training=*/false, 0);
    P.output.set_data_handle(own);
    return output;
}

const float* UNet::run_forward(Plan& P, bool training, uint64_t step) {
    last_ = &P;
    P.training = training;
    P.step = step;
    auto& s = DnnlContext::get().stream;
    const int depth = config_.depth;
    memory src = P.staged ? P.staged : P.input;
    for (int l = 0; l <= depth; ++l) {
        Block& b = P.enc[size_t(l)];
        block_forward(b, src, training, step);
        if (l == depth) break;
        P.pool[size_t(l)]->forward(b.a2, P.pooled[size_t(l)]);
        src = P.pooled[size_t(l)];
    }
    memory below = P.enc[size_t(depth)].a2;
    for (int l = depth - 1; l >= 0; --l) {
        Level& L = P.levels[size_t(l)];
        if (L.up_slabs) L.up_slabs->forward(below, L.up);
        else if (L.up_conv) L.up_conv->forward(below, L.up);
        else L.up_resample->forward(below, L.up);
        if (L.concat) L.concat->forward(L.up, P.enc[size_t(l)].a2, L.cat);
        block_forward(P.dec[size_t(l)], L.concat ? L.cat : L.up, training, step);
        below = P.dec[size_t(l)].a2;
    }
    P.out_conv->forward(below, P.output);
    s.wait();
    if (P.plain_output.empty()) return static_cast<const float*>(P.output.get_data_handle());
    read_plain(P.output, P.plain_output.data());
    return P.plain_output.data();
}

void UNet::backward(const float* diff_output, const GradientsReady& ready) {
    UNET_CHECK(last_ && last_->training, "backward() without a training forward()");
    Plan& P = *last_;
    auto& s = DnnlContext::get().stream;
    const int depth = config_.depth;
    auto finished = [&](const std::string& unit) {
        if (!ready) return;
        s.wait();
        ready(unit_start_.at(unit));
    };
    if (P.plain_output.empty())
        std::copy(diff_output, diff_output + product(P.d_output.get_desc().dims()),
                  static_cast<float*>(P.d_output.get_data_handle()));
    else
        write_plain(diff_output, P.d_output);
    P.out_conv->backward(P.dec[0].a2, P.output, P.d_output, P.dec[0].d2);
    finished("out");
    for (int l = 0; l < depth; ++l) {
        Level& L = P.levels[size_t(l)];
        block_backward(P.dec[size_t(l)], L.cat, L.d_cat);
        finished(level_name("dec", l));
        L.concat->backward(L.d_cat, 0, L.d_up, false);
        L.concat->backward(L.d_cat, 1, P.enc[size_t(l)].d2, false);  // skip part; the pool's is added later
        const memory below = l + 1 < depth ? P.dec[size_t(l + 1)].a2 : P.enc[size_t(depth)].a2;
        const memory d_below = l + 1 < depth ? P.dec[size_t(l + 1)].d2 : P.enc[size_t(depth)].d2;
        if (L.up_conv) L.up_conv->backward(below, L.up, L.d_up, d_below);
        else L.up_resample->backward(L.d_up, d_below);
        if (L.up_conv) finished(level_name("up", l));
    }
    for (int l = depth; l >= 0; --l) {
        Block& b = P.enc[size_t(l)];
        if (l < depth) {
            // The skip tensor feeds both the pool and the decoder's concat: sum both gradients.
            P.pool[size_t(l)]->backward(P.d_pooled[size_t(l)], P.d_skip_from_pool[size_t(l)]);
            s.wait();
            add_into(b.d2, P.d_skip_from_pool[size_t(l)]);
        }
        block_backward(b, l == 0 ? P.input : P.pooled[size_t(l - 1)], l == 0 ? memory() : P.d_pooled[size_t(l - 1)]);
        finished(level_name("enc", l));
    }
    s.wait();
}

double UNet::train_flops_per_sample(const Dims& spatial) {
    // FLOPs per sample do not depend on the batch: reuse any plan of this size before building one.
    for (const auto& [key, plan] : plans_)
        if (std::get<1>(key) == spatial && !std::get<2>(key)) return plan->flops_per_sample;
    return plan_for(1, spatial).flops_per_sample;
}

MemoryEstimate UNet::estimate_memory(int64_t batch, const Dims& spatial, int optimizer_state_copies) {
    MemoryEstimate e;
    e.activation_bytes = plan_for(batch, spatial).allocated_bytes;
    // flat params + flat grads + one reordered copy of the weights and of their gradients
    e.parameter_bytes = 4 * store_.size() * 4 + 4 * store_.buffers_size();
    e.optimizer_bytes = int64_t(optimizer_state_copies) * 4 * store_.size();
    e.scratchpad_bytes = int64_t(DnnlContext::get().max_scratchpad_bytes);
    return e;
}

int UNet::input_reorders(int64_t batch, const Dims& spatial) { return plan_for(batch, spatial).reorders; }
int UNet::winograd_layers(int64_t batch, const Dims& spatial) { return plan_for(batch, spatial).winograd_layers; }

}  // namespace unet
