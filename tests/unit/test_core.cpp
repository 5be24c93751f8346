// Core pieces: the flat parameter store, RNG determinism, layout descriptions.
#include <gtest/gtest.h>

#include "unet/core/check.h"
#include "unet/log/progress.h"
#include "unet/core/dnnl_util.h"
#include "unet/core/param_store.h"
#include "unet/core/rng.h"

using namespace unet;

TEST(ParamStore, ViewsAreAlignedAndDisjoint) {
    ParamStore s;
    const int a = s.add("a.weight", {3, 5});
    const int b = s.add("a.bias", {3});
    s.add_buffer("bn.running_mean", {3});
    s.finalize();
    EXPECT_EQ(s.parameter_count(), 18);
    EXPECT_EQ(s.view(a).offset % 16, 0);
    EXPECT_EQ(s.view(b).offset % 16, 0);
    EXPECT_GE(s.view(b).offset, s.view(a).offset + 15);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s.params()) % 64, 0u);
    EXPECT_EQ(s.find("a.bias"), b);
    EXPECT_EQ(s.find("nope"), -1);
    EXPECT_EQ(s.find_buffer("bn.running_mean"), 0);
    EXPECT_THROW(s.add("late", {1}), std::logic_error);
}

TEST(ParamStore, DuplicateNamesAreRejected) {
    ParamStore s;
    s.add("x", {1});
    EXPECT_THROW(s.add("x", {2}), std::logic_error);
}

TEST(Rng, SameSeedSameSequenceAndStateRoundTrip) {
    Rng a(5), b(5);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
    const auto st = a.state();
    const float x = a.uniform();
    b.set_state(st);
    EXPECT_EQ(b.uniform(), x);
    EXPECT_EQ(counter_uniform(1, 2, 3), counter_uniform(1, 2, 3));
    EXPECT_NE(counter_uniform(1, 2, 3), counter_uniform(1, 2, 4));
}

TEST(Rng, NormalHasUnitVariance) {
    Rng r(9);
    double s = 0, s2 = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
        const double v = r.normal();
        s += v;
        s2 += v * v;
    }
    EXPECT_NEAR(s / n, 0.0, 0.03);
    EXPECT_NEAR(s2 / n, 1.0, 0.05);
}

TEST(DnnlUtil, ChannelLayoutOfCommonFormats) {
    const Dims d{2, 32, 4, 6};
    const ChannelLayout plain(f32_desc(d, Tag::nchw));
    EXPECT_EQ(plain.offset(1, 3, 5), 1 * 32 * 24 + 3 * 24 + 5);
    const ChannelLayout cl(f32_desc(d, Tag::nhwc));
    EXPECT_EQ(cl.offset(1, 3, 5), 1 * 32 * 24 + 5 * 32 + 3);
    const ChannelLayout blk(f32_desc(d, Tag::nChw16c));
    EXPECT_EQ(blk.offset(1, 19, 5), 1 * 32 * 24 + 1 * 24 * 16 + 5 * 16 + 3);
    EXPECT_EQ(layout_name(f32_desc(d, Tag::nChw16c)), "aBcd16b");
}

TEST(Progress, DurationsReadLikeAClock) {
    EXPECT_EQ(unet::format_duration(0.2), "0s");
    EXPECT_EQ(unet::format_duration(42), "42s");
    EXPECT_EQ(unet::format_duration(185), "3m05s");
    EXPECT_EQ(unet::format_duration(7620), "2h07m");
}
