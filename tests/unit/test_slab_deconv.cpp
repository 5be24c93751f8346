// SlabDeconv (an inference plan's up-sampling: a 1x1 convolution to every tap and a depth-to-space
// reorder, slab by slab along the first spatial axis) against the naive double-precision transposed
// convolution and against oneDNN's deconvolution (a whole ConvLayer): batches of 1 and 2, 2D and 3D,
// caps that force one plane per slab, a whole division, and the whole axis; and a blocked src,
// which runs as oneDNN's deconvolution.
#include <gtest/gtest.h>

#include "../support/naive_ops.h"
#include "unet/core/param_store.h"
#include "unet/nn/conv.h"
#include "unet/nn/slab_deconv.h"

namespace unet {
namespace {

using namespace unet::testing;

struct SlabCase {
    int nd;
    int64_t batch, planes;
    size_t cap;
    int64_t expected_slab;
    bool blocked = false;
};

TEST(SlabDeconv, SlabsMatchTheNaiveAndTheWholeLayer) {
    const int64_t in_c = 8, out_c = 8;
    const ConvSpec spec{out_c, 2, PostOp::none, true, false, true};
    for (const SlabCase& sc : {SlabCase{3, 1, 6, 1, 1}, SlabCase{3, 2, 6, 0, 1}, SlabCase{2, 2, 6, 1, 1},
                               SlabCase{3, 1, 6, size_t(1) << 30, 6}, SlabCase{3, 2, 5, size_t(1) << 30, 5},
                               SlabCase{3, 2, 4, 1, 4, true}}) {
        Shape xs;
        xs.nd = sc.nd, xs.n = sc.batch, xs.c = in_c;
        xs.d = sc.nd == 3 ? sc.planes : 1;
        xs.h = sc.nd == 3 ? 3 : sc.planes;
        xs.w = 4;
        const Shape ys = xs.with_channels(out_c).scaled();
        ParamStore store;
        ConvLayer::register_params(store, "up", in_c, spec, sc.nd);
        store.finalize();
        const Vec w = random_vec(store.view(store.find("up.weight")).count, 31);
        const Vec b = random_vec(out_c, 32);
        const std::vector<float> wf = to_f32(w), bf = to_f32(b);
        std::copy(wf.begin(), wf.end(), store.param(store.find("up.weight")));
        std::copy(bf.begin(), bf.end(), store.param(store.find("up.bias")));
        const Vec x = to_f64(to_f32(random_vec(xs.size(), 33)));

        const memory::desc src_md =
            f32_desc(xs.dims(), sc.blocked ? Tag::nCdhw8c : channels_last_tag(sc.nd + 2));
        // A cap of 0 or 1 byte still runs one plane per slab; the others pick the largest fitting
        // division; a blocked src runs whole.
        SlabDeconv up(src_md, spec, store, "up", sc.cap);
        SCOPED_TRACE("d" + std::to_string(sc.nd) + " batch " + std::to_string(sc.batch) + " planes " +
                     std::to_string(sc.planes) + " cap " + std::to_string(sc.cap) + (sc.blocked ? " blocked" : ""));
        EXPECT_EQ(up.slab_planes(), sc.expected_slab);
        ASSERT_EQ(up.dst_desc().dims(), ys.dims());
        memory src = make_memory(src_md, x);
        memory dst = make_memory(up.dst_desc(), Vec(size_t(ys.size()), 99.0));  // garbage: every voxel is written
        up.forward(src, dst);
        ConvLayer whole(src_md, spec, store, "up");
        memory dst_whole = make_memory(whole.dst_desc());
        whole.forward(src, dst_whole);
        DnnlContext::get().stream.wait();

        const Vec y = read_f64(dst), y_whole = read_f64(dst_whole);
        const Vec y_ref = naive::deconv_forward(xs, x, to_f64(wf), to_f64(bf), out_c);
        EXPECT_TRUE(all_close(y, y_ref, 1e-5, 1e-5, &ys)) << "against the naive transposed convolution";
        EXPECT_TRUE(all_close(y, y_whole, 1e-6, 1e-6, &ys)) << "against oneDNN's deconvolution";
    }
}

}  // namespace
}  // namespace unet
