#include "unet/core/dnnl_util.h"

#include <algorithm>
#include <string>

#include "unet/core/check.h"

namespace unet {

DnnlContext& DnnlContext::get() {
    static DnnlContext ctx;
    return ctx;
}

memory DnnlContext::scratchpad(const memory::desc& md) {
    const size_t bytes = md.get_size();
    if (bytes > shared_scratchpad_.size()) {
        shared_scratchpad_ = AlignedVector<uint8_t>();  // free the old one before the larger one
        shared_scratchpad_.resize(bytes);
    }
    return memory(md, engine, shared_scratchpad_.data());
}

dnnl::primitive_attr user_scratchpad_attr() {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return attr;
}

Dims act_dims(int64_t n, int64_t c, const Dims& spatial) {
    Dims d{n, c};
    d.insert(d.end(), spatial.begin(), spatial.end());
    return d;
}

int64_t spatial_size(const memory::desc& md) {
    const Dims d = md.dims();
    int64_t s = 1;
    for (size_t i = 2; i < d.size(); ++i) s *= d[i];
    return s;
}

Tag plain_tag(int ndims) {
    UNET_CHECK(ndims == 4 || ndims == 5, "ndims " << ndims);
    return ndims == 4 ? Tag::nchw : Tag::ncdhw;
}
Tag channels_last_tag(int ndims) {
    UNET_CHECK(ndims == 4 || ndims == 5, "ndims " << ndims);
    return ndims == 4 ? Tag::nhwc : Tag::ndhwc;
}
Tag weights_plain_tag(int ndims) {
    UNET_CHECK(ndims == 4 || ndims == 5, "ndims " << ndims);
    return ndims == 4 ? Tag::oihw : Tag::oidhw;
}
Tag deconv_weights_plain_tag(int ndims) {
    UNET_CHECK(ndims == 4 || ndims == 5, "ndims " << ndims);
    return ndims == 4 ? Tag::iohw : Tag::iodhw;
}

memory::desc f32_desc(const Dims& dims, Tag tag) { return memory::desc(dims, memory::data_type::f32, tag); }
memory::desc any_desc(const Dims& dims) { return f32_desc(dims, Tag::any); }
bool is_channels_last(const memory::desc& md) { return md == f32_desc(md.dims(), channels_last_tag(md.data.ndims)); }
bool is_fallback_kernel(const std::string& impl) {
    return impl.find("gemm") != std::string::npos || impl.find("ref") != std::string::npos;
}

memory::desc conv_data_desc(const Dims& dims) {
    if (dims[1] < 16) return f32_desc(dims, channels_last_tag(int(dims.size())));
    return any_desc(dims);
}

void reorder_now(const memory& src, const memory& dst) {
    auto& ctx = DnnlContext::get();
    dnnl::reorder(src, dst).execute(ctx.stream, const_cast<memory&>(src), const_cast<memory&>(dst));
    ctx.stream.wait();
}

void write_plain(const float* plain, const memory& mem) {
    auto& ctx = DnnlContext::get();
    const memory::desc md = mem.get_desc();
    memory src(f32_desc(md.dims(), plain_tag(md.dims().size() >= 4 ? int(md.dims().size()) : 4)),
               ctx.engine, const_cast<float*>(plain));
    reorder_now(src, mem);
}

void read_plain(const memory& mem, float* plain) {
    auto& ctx = DnnlContext::get();
    const memory::desc md = mem.get_desc();
    memory dst(f32_desc(md.dims(), plain_tag(int(md.dims().size()))), ctx.engine, plain);
    reorder_now(mem, dst);
}

std::vector<float> to_plain(const memory& mem) {
    std::vector<float> out(size_t(product(mem.get_desc().dims())));
    read_plain(mem, out.data());
    return out;
}

ChannelLayout::ChannelLayout(const memory::desc& md) {
    const auto& d = md.data;
    UNET_CHECK(d.format_kind == dnnl_blocked, "ChannelLayout needs a blocked (dense) descriptor");
    const auto& b = d.format_desc.blocking;
    const int nd = d.ndims;
    UNET_CHECK(nd >= 3, "ChannelLayout needs N, C and spatial dims");
    n = d.dims[0];
    c = d.dims[1];
    spatial = 1;
    for (int i = 2; i < nd; ++i) spatial *= d.dims[i];
    // Only an inner block over channels is supported (aBcd16b and similar).
    UNET_CHECK(b.inner_nblks == 0 || (b.inner_nblks == 1 && b.inner_idxs[0] == 1),
               "unsupported activation layout " << layout_name(md));
    block = b.inner_nblks == 1 ? b.inner_blks[0] : 1;
    stride_n = b.strides[0];
    stride_cblock = b.strides[1];
    stride_cinner = block > 1 ? 1 : b.strides[1];
    if (block == 1) stride_cblock = b.strides[1];
    stride_s = b.strides[nd - 1];
    // Spatial dims must be dense among themselves so that one stride walks all of them.
    int64_t expect = stride_s;
    for (int i = nd - 1; i >= 2; --i) {
        UNET_CHECK(b.strides[i] == expect, "spatial dims not dense in " << layout_name(md));
        expect *= d.dims[i];
    }
}

std::string layout_name(const memory::desc& md) {
    const auto& d = md.data;
    if (d.format_kind != dnnl_blocked) return "non-blocked";
    const auto& b = d.format_desc.blocking;
    // Order dims by decreasing outer stride, then append inner blocks, like oneDNN's own tags.
    std::vector<int> order(size_t(d.ndims));
    for (int i = 0; i < d.ndims; ++i) order[size_t(i)] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int c) { return b.strides[a] > b.strides[c]; });
    std::string s;
    for (int i : order) {
        bool blocked = false;
        for (int k = 0; k < b.inner_nblks; ++k) blocked |= b.inner_idxs[k] == i;
        s += char((blocked ? 'A' : 'a') + i);
    }
    for (int k = 0; k < b.inner_nblks; ++k) s += std::to_string(b.inner_blks[k]) + char('a' + b.inner_idxs[k]);
    return s;
}

}  // namespace unet
