// oneDNN plumbing shared by every layer: the engine and stream, the plain and channels-last tags
// for 2D (N,C,H,W) and 3D (N,C,D,H,W) tensors, and reorders between a plain float buffer and
// whatever layout a primitive chose.
//
// All activations are f32. A 2D tensor has 4 dims, a 3D tensor 5; code that is generic over the
// two takes `spatial` (2 or 3 entries) and builds dims with act_dims().
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <string>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "unet/core/aligned.h"

#include "unet/core/dims.h"

namespace unet {

using dnnl::memory;
static_assert(std::is_same<Dims, memory::dims>::value, "core/dims.h must match oneDNN's dims");
using Tag = memory::format_tag;

// One CPU engine and one in-order stream per process. oneDNN primitives created with the default
// scratchpad must run on the thread that created them: all compute happens on the main thread.
// The library-managed scratchpad is one buffer shared by the primitives that use it, as large as
// the largest primitive's; but oneDNN 2.6's gemm-based deconvolution (our up-sampling on AVX2)
// allocates its own when it is created, 35 MB for a 64^3 window's first level, so the
// convolution layers ask for user scratchpads (user_scratchpad_attr) and run on one buffer
// shared through scratchpad(). Sharing is safe: one in-order stream, all compute on one thread.
// The layers report their scratchpad sizes so that memory estimates count the larger of the two.
struct DnnlContext {
    dnnl::engine engine{dnnl::engine::kind::cpu, 0};
    dnnl::stream stream{engine};
    size_t max_scratchpad_bytes = 0;
    // What a primitive of `pd` holds beside its tensors: its scratchpad or its own memory.
    static size_t scratchpad_bytes(const dnnl::primitive_desc_base& pd) {
        return std::max(size_t(pd.query_s64(dnnl::query::memory_consumption_s64)), pd.scratchpad_desc().get_size());
    }
    void note_scratchpad_bytes(size_t bytes) { max_scratchpad_bytes = std::max(max_scratchpad_bytes, bytes); }
    void note_scratchpad(const dnnl::primitive_desc_base& pd) { note_scratchpad_bytes(scratchpad_bytes(pd)); }
    // A memory of `md` (a user-mode primitive's scratchpad_desc) on the shared buffer, which grows
    // to fit; valid until a larger one is asked for.
    memory scratchpad(const memory::desc& md);
    static DnnlContext& get();

   private:
    AlignedVector<uint8_t> shared_scratchpad_;
};

// Attributes that make a primitive take its scratchpad from DnnlContext::scratchpad().
dnnl::primitive_attr user_scratchpad_attr();

Dims act_dims(int64_t n, int64_t c, const Dims& spatial);
int64_t spatial_size(const memory::desc& md);  // D*H*W (H*W in 2D)

Tag plain_tag(int ndims);          // nchw / ncdhw
Tag channels_last_tag(int ndims);  // nhwc / ndhwc
Tag weights_plain_tag(int ndims);  // oihw / oidhw (PyTorch Conv weight order)
Tag deconv_weights_plain_tag(int ndims);  // iohw / iodhw (PyTorch ConvTranspose weight order)

memory::desc f32_desc(const Dims& dims, Tag tag);
memory::desc any_desc(const Dims& dims);
bool is_channels_last(const memory::desc& md);  // f32, dense nhwc / ndhwc
// An implementation name (impl_info_str) of one of oneDNN's fallbacks: gemm or reference code.
bool is_fallback_kernel(const std::string& impl);
// Channels-last when the tensor has fewer than 16 channels (oneDNN 2.6 falls back to gemm for
// backward-weights on such layers with blocked or plain data), else `any`.
memory::desc conv_data_desc(const Dims& dims);

// Copies between a dense plain (nc[d]hw) float buffer and a memory of any layout.
void write_plain(const float* plain, const memory& mem);
void read_plain(const memory& mem, float* plain);
std::vector<float> to_plain(const memory& mem);

// Executes a reorder src -> dst on the shared stream and waits.
void reorder_now(const memory& src, const memory& dst);

// Describes where element (n, c, s) of an activation lives, for the few kernels of our own
// (group norm, loss) that must work on any layout oneDNN picks for data: plain, channels-last or
// channel-blocked (nChw16c and friends). s is the flattened spatial index.
struct ChannelLayout {
    int64_t n = 0, c = 0, spatial = 0;
    int64_t stride_n = 0;       // elements between samples
    int64_t block = 1;          // channels per inner block (1 for plain / channels-last)
    int64_t stride_cblock = 0;  // elements between channel blocks
    int64_t stride_cinner = 0;  // elements between channels inside a block
    int64_t stride_s = 0;       // elements between neighbouring spatial points

    explicit ChannelLayout(const memory::desc& md);
    int64_t offset(int64_t in, int64_t ic, int64_t is) const {
        return in * stride_n + (ic / block) * stride_cblock + (ic % block) * stride_cinner +
               is * stride_s;
    }
};

// Human-readable layout of a descriptor, e.g. "aBcd16b" / "acdb"; used in tests and debug output.
std::string layout_name(const memory::desc& md);

}  // namespace unet
