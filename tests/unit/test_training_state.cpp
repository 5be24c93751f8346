// Checkpoint capture and restore: a model's parameters, batch-norm buffers, optimizer moments and
// progress survive a write and a read bit for bit, into a fresh model; a checkpoint of another
// model or optimizer is refused.
#include <gtest/gtest.h>

#include <stdexcept>

#include <cstring>

#include "../support/test_files.h"
#include "unet/core/rng.h"
#include "unet/io/checkpoint.h"
#include "unet/nn/unet.h"
#include "unet/train/training_state.h"

using namespace unet;
using unet::test_support::TempDir;

namespace {

TrainOptions small_options() {
    TrainOptions o;
    o.model.dims = 2;
    o.model.in_channels = 2;
    o.model.base_filters = 4;
    o.model.depth = 1;
    o.model.norm = NormKind::batch;
    o.input_size = {8, 8};
    return o;
}

}  // namespace

TEST(TrainingState, CaptureWriteReadRestoreRoundTrip) {
    TempDir dir;
    const TrainOptions o = small_options();
    UNet a(o.model);
    Optimizer opt_a(o.optimizer, a.store().size());
    Rng rng(5);
    ParamStore& s = a.store();
    for (int64_t i = 0; i < s.size(); ++i) s.grads()[i] = rng.normal();
    for (int64_t i = 0; i < s.buffers_size(); ++i) s.buffers()[i] = rng.normal();
    opt_a.step(s.params(), s.grads(), 0.01f);
    opt_a.step(s.params(), s.grads(), 0.01f);
    Progress p;
    p.step = 12, p.epoch = 3, p.epoch_step = 2, p.best_val_dice = 0.625;
    p.epoch_loss_sum = 1.0 / 3.0, p.epoch_dice_sum = 0.1 + 0.2, p.train_seconds = 12.345678901234567;
    const std::string path = dir.path() + "/c.h5";
    write_checkpoint(path, capture_state(s, opt_a, p, o));

    TrainOptions o2 = o;
    o2.model.seed = 99;  // a differently initialised model of the same layout
    UNet b(o2.model);
    Optimizer opt_b(o.optimizer, b.store().size());
    const Progress q = restore_state(read_checkpoint(path), path, b.store(), opt_b);
    EXPECT_EQ(q.step, 12);
    EXPECT_EQ(q.epoch, 3);
    EXPECT_EQ(q.epoch_step, 2);
    EXPECT_EQ(q.best_val_dice, 0.625);
    EXPECT_EQ(q.epoch_loss_sum, 1.0 / 3.0);  // bit for bit: a resumed epoch's mean is the uninterrupted one's
    EXPECT_EQ(q.epoch_dice_sum, 0.1 + 0.2);
    EXPECT_EQ(q.train_seconds, 12.345678901234567);
    EXPECT_EQ(opt_b.step_count(), 2);
    const ParamStore& t = b.store();
    ASSERT_EQ(t.size(), s.size());
    EXPECT_EQ(0, std::memcmp(t.params(), s.params(), sizeof(float) * size_t(s.size())));
    EXPECT_EQ(0, std::memcmp(t.buffers(), s.buffers(), sizeof(float) * size_t(s.buffers_size())));
    auto sa = opt_a.state(), sb = opt_b.state();
    ASSERT_EQ(sa.size(), sb.size());
    for (size_t k = 0; k < sa.size(); ++k) EXPECT_TRUE(*sa[k].second == *sb[k].second) << sa[k].first;
}

TEST(TrainingState, RefusesAnotherModelOrOptimizer) {
    TempDir dir;
    const TrainOptions o = small_options();
    UNet a(o.model);
    Optimizer opt(o.optimizer, a.store().size());
    const std::string path = dir.path() + "/c.h5";
    write_checkpoint(path, capture_state(a.store(), opt, Progress(), o));
    TrainOptions wider = o;
    wider.model.base_filters = 8;
    UNet b(wider.model);
    Optimizer opt_b(o.optimizer, b.store().size());
    EXPECT_THROW(restore_state(read_checkpoint(path), path, b.store(), opt_b), std::runtime_error);
    OptimizerConfig sgd;
    sgd.kind = "sgd";
    Optimizer opt_sgd(sgd, a.store().size());
    UNet c(o.model);
    EXPECT_THROW(restore_state(read_checkpoint(path), path, c.store(), opt_sgd), std::runtime_error);
}

// Counters and numbers from a damaged file are refused naming them, before a run starts from them
// (a step of -2^62 would train for ever).
TEST(TrainingState, RefusesCountersOutOfRangeAndNumbersThatAreNot) {
    const TrainOptions o = small_options();
    UNet a(o.model);
    Optimizer opt(o.optimizer, a.store().size());
    Progress p;
    p.step = 12, p.epoch = 3, p.epoch_step = 2;
    const Checkpoint good = capture_state(a.store(), opt, p, o);
    auto error_of = [&](const Checkpoint& c) -> std::string {
        UNet b(o.model);
        Optimizer opt_b(o.optimizer, b.store().size());
        try {
            restore_state(c, "c.h5", b.store(), opt_b);
        } catch (const std::runtime_error& e) {
            return e.what();
        }
        return "(accepted)";
    };
    EXPECT_EQ(error_of(good), "(accepted)");
    struct Case {
        const char* name;
        int64_t value;
    };
    for (const Case& k : {Case{"step", -1}, Case{"step", int64_t(1) << 62}, Case{"epoch", -3},
                          Case{"epoch", int64_t(1) << 40}, Case{"epoch_step", 13}, Case{"optimizer_step", -7}}) {
        Checkpoint c = good;
        c.integers[k.name] = k.value;
        const std::string msg = error_of(c);
        EXPECT_NE(msg.find(std::string("c.h5: checkpoint's '") + k.name + "' is " + std::to_string(k.value) +
                           ", outside ["),
                  std::string::npos)
            << msg;
    }
    Checkpoint c = good;
    c.strings["epoch_loss_sum"] = "1.5e";
    c.strings["epoch_loss_sum"][3] = '\x01';
    EXPECT_NE(error_of(c).find("'epoch_loss_sum' is not a number"), std::string::npos) << error_of(c);
}
