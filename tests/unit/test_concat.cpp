// Concat (channel concatenation of a skip connection and an up-sampled tensor) against the naive
// reference, in 2D and 3D, with inputs in equal and in mixed layouts, and the backward both
// overwriting and accumulating into the caller's gradient.
#include <gtest/gtest.h>

#include <sstream>

#include "../support/naive_ops.h"
#include "unet/nn/concat.h"

namespace unet {
namespace {

using namespace unet::testing;

struct ConcatCase {
    int nd = 2;
    int64_t ca = 3, cb = 5;
    Layout la = Layout::plain, lb = Layout::plain;

    Shape shape(int64_t c) const {
        Shape s;
        s.n = 2;
        s.c = c;
        s.nd = nd;
        s.d = nd == 3 ? 2 : 1;
        s.h = 3;
        s.w = nd == 3 ? 2 : 4;
        return s;
    }
    std::string name() const {
        std::ostringstream os;
        os << "d" << nd << "_c" << ca << layout_str(la) << "_c" << cb << layout_str(lb);
        return os.str();
    }
};

void PrintTo(const ConcatCase& c, std::ostream* os) { *os << c.name(); }

class NaiveConcatGradient : public ::testing::TestWithParam<int> {};

TEST_P(NaiveConcatGradient, MatchesCentralDifferences) {
    const ConcatCase cc{GetParam()};
    const Shape as = cc.shape(cc.ca), bs = cc.shape(cc.cb);
    const Vec a = random_vec(as.size(), 61), b = random_vec(bs.size(), 62);
    const Vec dy = random_vec(as.size() + bs.size(), 63);
    Vec da, db;
    naive::concat_backward(as, bs, dy, da, db);
    EXPECT_TRUE(gradient_ok(
        check_gradient([&](const Vec& v) { return naive::concat_forward(as, v, bs, b); }, a, dy, da, 1e-5), 1e-6,
        "da"));
    EXPECT_TRUE(gradient_ok(
        check_gradient([&](const Vec& v) { return naive::concat_forward(as, a, bs, v); }, b, dy, db, 1e-5), 1e-6,
        "db"));
}

INSTANTIATE_TEST_SUITE_P(All, NaiveConcatGradient, ::testing::Values(2, 3),
                         [](const auto& info) { return "d" + std::to_string(info.param); });

TEST(NaiveConcat, ChannelOrder) {
    Shape as, bs;
    as.n = bs.n = 2;
    as.c = 1;
    bs.c = 2;
    as.h = as.w = bs.h = bs.w = 1;
    // Per sample: a's channels first, then b's.
    EXPECT_EQ(naive::concat_forward(as, {1, 2}, bs, {10, 11, 20, 21}), (Vec{1, 10, 11, 2, 20, 21}));
}

class ConcatTest : public ::testing::TestWithParam<ConcatCase> {};

TEST_P(ConcatTest, MatchesNaiveAndFiniteDifferences) {
    const ConcatCase cc = GetParam();
    const Shape as = cc.shape(cc.ca), bs = cc.shape(cc.cb), ys = cc.shape(cc.ca + cc.cb);
    const memory::desc a_md = f32_desc(as.dims(), layout_tag(cc.la, cc.nd + 2));
    const memory::desc b_md = f32_desc(bs.dims(), layout_tag(cc.lb, cc.nd + 2));
    Concat cat(a_md, b_md);
    ASSERT_EQ(cat.dst_desc().dims(), ys.dims());

    const std::vector<float> af = to_f32(random_vec(as.size(), 64)), bf = to_f32(random_vec(bs.size(), 65));
    const Vec a = to_f64(af), b = to_f64(bf);
    memory am = make_memory(a_md, a), bm = make_memory(b_md, b), dst = make_memory(cat.dst_desc());
    cat.forward(am, bm, dst);
    DnnlContext::get().stream.wait();
    EXPECT_TRUE(all_close(read_f64(dst), naive::concat_forward(as, a, bs, b), 0, 0, &ys)) << "forward";

    const Vec dy = random_vec(ys.size(), 66);
    Vec da_ref, db_ref;
    naive::concat_backward(as, bs, dy, da_ref, db_ref);
    memory diff_dst = make_memory(cat.dst_desc(), dy);

    // accumulate = false overwrites whatever was there.
    memory da = make_memory(a_md, Vec(size_t(as.size()), 7.0)), db = make_memory(b_md, Vec(size_t(bs.size()), 7.0));
    cat.backward(diff_dst, 0, da, false);
    cat.backward(diff_dst, 1, db, false);
    DnnlContext::get().stream.wait();
    EXPECT_TRUE(all_close(read_f64(da), da_ref, 0, 0, &as)) << "diff a";
    EXPECT_TRUE(all_close(read_f64(db), db_ref, 0, 0, &bs)) << "diff b";

    // accumulate = true adds to it (the skip tensor also receives the max-pool's gradient).
    const Vec prior_a = random_vec(as.size(), 67), prior_b = random_vec(bs.size(), 68);
    write_f64(prior_a, da);
    write_f64(prior_b, db);
    cat.backward(diff_dst, 0, da, true);
    cat.backward(diff_dst, 1, db, true);
    DnnlContext::get().stream.wait();
    Vec sum_a = to_f64(to_f32(prior_a)), sum_b = to_f64(to_f32(prior_b));
    for (size_t i = 0; i < sum_a.size(); ++i) sum_a[i] += da_ref[i];
    for (size_t i = 0; i < sum_b.size(); ++i) sum_b[i] += db_ref[i];
    EXPECT_TRUE(all_close(read_f64(da), sum_a, 1e-6, 1e-6, &as)) << "accumulated diff a";
    EXPECT_TRUE(all_close(read_f64(db), sum_b, 1e-6, 1e-6, &bs)) << "accumulated diff b";
    // diff_dst is only read.
    EXPECT_TRUE(all_close(read_f64(diff_dst), to_f64(to_f32(dy)), 0, 0, &ys)) << "diff_dst changed";

    // Float finite differences through forward, against the overwrite backward.
    std::vector<float> ain = af, bin = bf;
    auto run = [&]() {
        write_plain(ain.data(), am);
        write_plain(bin.data(), bm);
        cat.forward(am, bm, dst);
        DnnlContext::get().stream.wait();
        return to_plain(dst);
    };
    FloatFdCheck fd;
    for (int64_t i : pick_indices(as.size(), 4, 69))
        fd.add("a" + as.coord(i), float_difference(run, ain[size_t(i)], dy, 1e-2f, nullptr), da_ref[size_t(i)]);
    for (int64_t i : pick_indices(bs.size(), 4, 70))
        fd.add("b" + bs.coord(i), float_difference(run, bin[size_t(i)], dy, 1e-2f, nullptr), db_ref[size_t(i)]);
    EXPECT_TRUE(fd.result());
}

std::vector<ConcatCase> cases() {
    std::vector<ConcatCase> v;
    for (int nd : {2, 3}) {
        v.push_back({nd, 3, 5, Layout::plain, Layout::plain});
        v.push_back({nd, 8, 8, Layout::channels_last, Layout::channels_last});
        v.push_back({nd, 16, 16, Layout::blocked16, Layout::blocked16});
        v.push_back({nd, 32, 16, Layout::blocked16, Layout::blocked16});
        v.push_back({nd, 16, 8, Layout::blocked16, Layout::channels_last});
        v.push_back({nd, 8, 16, Layout::channels_last, Layout::blocked16});
        v.push_back({nd, 16, 16, Layout::plain, Layout::blocked16});
        v.push_back({nd, 3, 16, Layout::plain, Layout::channels_last});
        v.push_back({nd, 24, 8, Layout::blocked16, Layout::blocked16});
        v.push_back({nd, 8, 8, Layout::blocked16, Layout::blocked16});
    }
    return v;
}

INSTANTIATE_TEST_SUITE_P(All, ConcatTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name(); });

}  // namespace
}  // namespace unet
