// Dropout (inverted, counter-based mask) in 2D and 3D: the drop rate, the 1 / (1 - p) scaling,
// the same mask for the same (seed, stream, step) and a different one otherwise, identity in
// eval mode, a backward that applies the mask of the last training forward, independence from
// the thread count, and agreement with the naive reference given the mask the layer used.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <sstream>

#include "../support/naive_ops.h"
#include "unet/nn/dropout.h"

namespace unet {
namespace {

using namespace unet::testing;

struct DropoutCase {
    int nd = 2;
    float rate = 0.5f;
    int64_t c = 8;
    Layout layout = Layout::plain;

    // 4096 elements: the observed drop rate is within 0.04 of p with overwhelming probability.
    Shape shape() const {
        Shape s;
        s.n = 2;
        s.c = c;
        s.nd = nd;
        s.d = nd == 3 ? 8 : 1;
        s.h = nd == 3 ? 4 : 16;
        s.w = nd == 3 ? 8 : 16;
        return s;
    }
    std::string name() const {
        std::ostringstream os;
        os << "d" << nd << "_p" << int(std::lround(rate * 100)) << "_c" << c << "_" << layout_str(layout);
        return os.str();
    }
};

void PrintTo(const DropoutCase& c, std::ostream* os) { *os << c.name(); }

// The keep mask a forward used, read back from its output (inputs are never 0).
std::vector<uint8_t> mask_of(const Vec& y) {
    std::vector<uint8_t> keep(y.size());
    for (size_t i = 0; i < y.size(); ++i) keep[i] = y[i] != 0.0;
    return keep;
}

double drop_fraction(const std::vector<uint8_t>& keep) {
    int64_t dropped = 0;
    for (uint8_t k : keep) dropped += !k;
    return double(dropped) / double(keep.size());
}

double mismatch_fraction(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
    int64_t diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff += a[i] != b[i];
    return double(diff) / double(a.size());
}

TEST(NaiveDropout, GradientMatchesCentralDifferences) {
    const Vec x = random_vec(200, 111), dy = random_vec(200, 112);
    std::vector<uint8_t> keep(200);
    for (size_t i = 0; i < keep.size(); ++i) keep[i] = (i * 7 + 3) % 5 < 3;
    const Vec dx = naive::dropout_backward(dy, keep, 0.4);
    EXPECT_TRUE(gradient_ok(
        check_gradient([&](const Vec& v) { return naive::dropout_forward(v, keep, 0.4); }, x, dy, dx, 1e-5), 1e-6,
        "dx"));
    EXPECT_EQ(naive::dropout_forward({2.0, 3.0}, {1, 0}, 0.5), (Vec{4.0, 0.0}));
}

class DropoutTest : public ::testing::TestWithParam<DropoutCase> {
   protected:
    void SetUp() override {
        dc_ = GetParam();
        xs_ = dc_.shape();
        md_ = f32_desc(xs_.dims(), layout_tag(dc_.layout, dc_.nd + 2));
        x_ = to_f64(to_f32(away_from_zero(random_vec(xs_.size(), 113), 0.1)));
    }
    Vec run_forward(Dropout& d, uint64_t step, bool training) {
        memory src = make_memory(md_, x_), dst = make_memory(md_);
        d.forward(src, dst, step, training);
        return read_f64(dst);
    }
    DropoutCase dc_;
    Shape xs_;
    memory::desc md_;
    Vec x_;
};

TEST_P(DropoutTest, RateScalingAndNaiveForward) {
    Dropout d(md_, dc_.rate, 1234, 7);
    EXPECT_EQ(d.dst_desc(), md_);
    const Vec y = run_forward(d, 5, true);
    const std::vector<uint8_t> keep = mask_of(y);
    EXPECT_NEAR(drop_fraction(keep), dc_.rate, 0.04);
    // Every kept element is x / (1 - p) (in float: x * (1 / (1 - p))).
    EXPECT_TRUE(all_close(y, naive::dropout_forward(x_, keep, dc_.rate), 1e-6, 0, &xs_));
}

TEST_P(DropoutTest, SameStepSameMaskOtherwiseDifferent) {
    Dropout d(md_, dc_.rate, 1234, 7);
    const std::vector<uint8_t> m5 = mask_of(run_forward(d, 5, true));
    EXPECT_EQ(mask_of(run_forward(d, 5, true)), m5) << "same step, same mask";
    Dropout twin(md_, dc_.rate, 1234, 7);
    EXPECT_EQ(mask_of(run_forward(twin, 5, true)), m5) << "a second layer with the same seed and stream";
    // Independent masks differ in a fraction 2p(1-p) of the elements.
    const double expect = 2.0 * dc_.rate * (1.0 - dc_.rate);
    EXPECT_NEAR(mismatch_fraction(mask_of(run_forward(d, 6, true)), m5), expect, 0.05) << "next step";
    Dropout other_stream(md_, dc_.rate, 1234, 8);
    EXPECT_NEAR(mismatch_fraction(mask_of(run_forward(other_stream, 5, true)), m5), expect, 0.05) << "other stream";
    Dropout other_seed(md_, dc_.rate, 4321, 7);
    EXPECT_NEAR(mismatch_fraction(mask_of(run_forward(other_seed, 5, true)), m5), expect, 0.05) << "other seed";
}

TEST_P(DropoutTest, IndependentOfThreadCount) {
    Dropout d(md_, dc_.rate, 99, 1);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const Vec one = run_forward(d, 3, true);
    omp_set_num_threads(std::max(2, saved));
    const Vec many = run_forward(d, 3, true);
    omp_set_num_threads(saved);
    EXPECT_EQ(one, many);
}

TEST_P(DropoutTest, EvalAndZeroRateAreIdentity) {
    Dropout d(md_, dc_.rate, 1234, 7);
    EXPECT_EQ(run_forward(d, 5, false), x_);
    Dropout none(md_, 0.f, 1234, 7);
    EXPECT_EQ(run_forward(none, 5, true), x_);
    // In place too.
    memory buf = make_memory(md_, x_);
    d.forward(buf, buf, 5, false);
    EXPECT_EQ(read_f64(buf), x_);
}

TEST_P(DropoutTest, BackwardUsesMaskOfLastTrainingForward) {
    Dropout d(md_, dc_.rate, 1234, 7);
    const std::vector<uint8_t> keep = mask_of(run_forward(d, 9, true));
    run_forward(d, 10, false);  // eval forwards do not replace the mask
    const Vec dy = to_f64(to_f32(random_vec(xs_.size(), 114)));
    const Vec dx_ref = naive::dropout_backward(dy, keep, dc_.rate);
    memory diff_dst = make_memory(md_, dy), diff_src = make_memory(md_, Vec(size_t(xs_.size()), 7.0));
    d.backward(diff_dst, diff_src);
    EXPECT_TRUE(all_close(read_f64(diff_src), dx_ref, 1e-6, 0, &xs_));
    // In place.
    d.backward(diff_dst, diff_dst);
    EXPECT_TRUE(all_close(read_f64(diff_dst), dx_ref, 1e-6, 0, &xs_));

    // Forward in place matches the out-of-place result.
    memory buf = make_memory(md_, x_);
    d.forward(buf, buf, 9, true);
    EXPECT_TRUE(all_close(read_f64(buf), naive::dropout_forward(x_, keep, dc_.rate), 1e-6, 0, &xs_));

    // Float finite differences of the training forward at a fixed step.
    std::vector<float> xin = to_f32(x_);
    memory src = make_memory(md_), dst = make_memory(md_);
    auto run = [&]() {
        write_plain(xin.data(), src);
        d.forward(src, dst, 9, true);
        return to_plain(dst);
    };
    FloatFdCheck fd;
    for (int64_t i : pick_indices(xs_.size(), 8, 115))
        fd.add("x" + xs_.coord(i), float_difference(run, xin[size_t(i)], dy, 1e-2f, nullptr), dx_ref[size_t(i)]);
    EXPECT_TRUE(fd.result());
}

std::vector<DropoutCase> cases() {
    std::vector<DropoutCase> v;
    for (int nd : {2, 3}) {
        v.push_back({nd, 0.5f, 8, Layout::plain});
        v.push_back({nd, 0.1f, 8, Layout::channels_last});
        v.push_back({nd, 0.3f, 16, Layout::blocked16});
    }
    return v;
}

INSTANTIATE_TEST_SUITE_P(All, DropoutTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name(); });

TEST(Dropout, RejectsBadRates) {
    const memory::desc md = f32_desc({1, 2, 2, 2}, Tag::nchw);
    EXPECT_THROW(Dropout(md, 1.f, 0, 0), std::logic_error);
    EXPECT_THROW(Dropout(md, -0.1f, 0, 0), std::logic_error);
}

}  // namespace
}  // namespace unet
