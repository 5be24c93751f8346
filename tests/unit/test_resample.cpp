// Resample (x2 nearest and bi-/tri-linear up-sampling, PyTorch align_corners=False) against the
// naive reference, in 2D and 3D and in plain, channels-last and blocked layouts.
#include <gtest/gtest.h>

#include <sstream>

#include "../support/naive_ops.h"
#include "unet/nn/resample.h"

namespace unet {
namespace {

using namespace unet::testing;
using naive::Interp;

struct ResampleCase {
    int nd = 2;
    ResampleMode mode = ResampleMode::linear;
    int64_t c = 3;
    Layout layout = Layout::plain;

    Interp interp() const { return mode == ResampleMode::linear ? Interp::linear : Interp::nearest; }
    // Odd and unequal sizes: the clamped edges and every axis get exercised.
    Shape src_shape() const {
        Shape s;
        s.n = 2;
        s.c = c;
        s.nd = nd;
        s.d = nd == 3 ? 3 : 1;
        s.h = nd == 3 ? 2 : 3;
        s.w = nd == 3 ? 4 : 5;
        return s;
    }
    std::string name() const {
        std::ostringstream os;
        os << "d" << nd << (mode == ResampleMode::linear ? "_linear" : "_nearest") << "_c" << c << "_"
           << layout_str(layout);
        return os.str();
    }
};

void PrintTo(const ResampleCase& c, std::ostream* os) { *os << c.name(); }

class NaiveResampleGradient : public ::testing::TestWithParam<ResampleCase> {};

TEST_P(NaiveResampleGradient, MatchesCentralDifferences) {
    const ResampleCase rc = GetParam();
    const Shape xs = rc.src_shape();
    const Vec x = random_vec(xs.size(), 51);
    const Vec dy = random_vec(xs.scaled().size(), 52);
    const Vec dx = naive::upsample_backward(xs, dy, rc.interp());
    EXPECT_TRUE(gradient_ok(
        check_gradient([&](const Vec& v) { return naive::upsample_forward(xs, v, rc.interp()); }, x, dy, dx, 1e-5),
        1e-6, "dx"));
}

INSTANTIATE_TEST_SUITE_P(All, NaiveResampleGradient,
                         ::testing::Values(ResampleCase{2, ResampleMode::nearest},
                                           ResampleCase{2, ResampleMode::linear},
                                           ResampleCase{3, ResampleMode::nearest},
                                           ResampleCase{3, ResampleMode::linear}),
                         [](const auto& info) { return info.param.name(); });

// torch.nn.functional.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]), scale_factor=2,
// mode="bilinear", align_corners=False) and mode="nearest".
TEST(NaiveResample, MatchesPyTorchValues) {
    Shape xs;
    xs.h = 2;
    xs.w = 2;
    const Vec x = {1, 2, 3, 4};
    const Vec linear = {1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0};
    const Vec nearest = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    EXPECT_TRUE(all_close(naive::upsample_forward(xs, x, Interp::linear), linear, 0, 1e-12));
    EXPECT_TRUE(all_close(naive::upsample_forward(xs, x, Interp::nearest), nearest, 0, 1e-12));
    // Trilinear on a 2x1x1 volume along depth: [0, 8] -> [0, 2, 6, 8] in each 2x2 slice.
    Shape vs;
    vs.nd = 3;
    vs.d = 2;
    const Vec y = naive::upsample_forward(vs, {0, 8}, Interp::linear);
    EXPECT_TRUE(all_close(y, {0, 0, 0, 0, 2, 2, 2, 2, 6, 6, 6, 6, 8, 8, 8, 8}, 0, 1e-12));
}

class ResampleTest : public ::testing::TestWithParam<ResampleCase> {};

TEST_P(ResampleTest, MatchesNaiveAndFiniteDifferences) {
    const ResampleCase rc = GetParam();
    const Shape xs = rc.src_shape(), ys = xs.scaled();
    const memory::desc src_md = f32_desc(xs.dims(), layout_tag(rc.layout, rc.nd + 2));
    Resample rs(src_md, rc.mode);
    ASSERT_EQ(rs.dst_desc().dims(), ys.dims());
    EXPECT_EQ(layout_name(rs.dst_desc()), layout_name(src_md)) << "dst keeps src's layout";

    const std::vector<float> xf = to_f32(random_vec(xs.size(), 53));
    const Vec x = to_f64(xf);
    memory src = make_memory(src_md, x), dst = make_memory(rs.dst_desc());
    rs.forward(src, dst);
    DnnlContext::get().stream.wait();
    EXPECT_TRUE(all_close(read_f64(dst), naive::upsample_forward(xs, x, rc.interp()), 1e-5, 1e-5, &ys)) << "forward";

    const Vec dy = random_vec(ys.size(), 54);
    memory diff_dst = make_memory(rs.dst_desc(), dy);
    memory diff_src = make_memory(src_md, Vec(size_t(xs.size()), 7.0));  // overwritten, not added to
    rs.backward(diff_dst, diff_src);
    DnnlContext::get().stream.wait();
    const Vec dx = read_f64(diff_src);
    EXPECT_TRUE(all_close(dx, naive::upsample_backward(xs, dy, rc.interp()), 1e-5, 1e-5, &xs)) << "diff_src";

    std::vector<float> xin = xf;
    auto run = [&]() {
        write_plain(xin.data(), src);
        rs.forward(src, dst);
        DnnlContext::get().stream.wait();
        return to_plain(dst);
    };
    FloatFdCheck fd;
    for (int64_t i : pick_indices(xs.size(), 8, 55))
        fd.add("x" + xs.coord(i), float_difference(run, xin[size_t(i)], dy, 1e-2f, nullptr), dx[size_t(i)]);
    EXPECT_TRUE(fd.result());
}

std::vector<ResampleCase> cases() {
    std::vector<ResampleCase> v;
    for (int nd : {2, 3})
        for (ResampleMode m : {ResampleMode::nearest, ResampleMode::linear})
            for (int64_t c : {3, 16})
                for (Layout l : {Layout::plain, Layout::channels_last, Layout::blocked16}) v.push_back({nd, m, c, l});
    return v;
}

INSTANTIATE_TEST_SUITE_P(All, ResampleTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name(); });

}  // namespace
}  // namespace unet
