// TensorBoard logs of a run: the pictures of a sample (slice choice, size, colours), the summaries
// as TensorBoard's plugins expect them (read back through our own protos), and TensorBoardHooks
// driven through a short fake run: the three event files, every record intact, the tags and
// steps written, nothing at all on a non-writer rank, and an unwritable logdir refused at start.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "proto/event.pb.h"
#include "proto/hparams.pb.h"
#include "unet/log/records.h"
#include "unet/log/sample_pictures.h"
#include "unet/log/summaries.h"
#include "unet/nn/unet.h"
#include "unet/train/tensorboard_hooks.h"
#include "../support/test_files.h"

using unet::test_support::TempDir;

using namespace unet;
namespace fs = std::filesystem;

namespace {


// Every event of the single event file in `dir`, checked record by record.
std::vector<tb::Event> events_in(const std::string& dir) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find("tfevents") != std::string::npos) files.push_back(e.path());
    EXPECT_EQ(files.size(), 1u) << dir;
    if (files.empty()) return {};
    const RecordScan scan = read_records(files[0]);
    EXPECT_TRUE(scan.clean()) << files[0] << ": " << scan.corruption;
    std::vector<tb::Event> events;
    for (const std::string& r : scan.records) {
        tb::Event e;
        EXPECT_TRUE(e.ParseFromString(r));
        events.push_back(e);
    }
    EXPECT_FALSE(events.empty());
    if (!events.empty()) {
        EXPECT_EQ(events[0].file_version(), "brain.Event:2");
    }
    return events;
}

// tag -> steps at which it was written
std::map<std::string, std::vector<int64_t>> tag_steps(const std::vector<tb::Event>& events) {
    std::map<std::string, std::vector<int64_t>> out;
    for (const tb::Event& e : events)
        for (const auto& v : e.summary().value()) out[v.tag()].push_back(e.step());
    return out;
}

const tb::Summary::Value* find_value(const std::vector<tb::Event>& events, const std::string& tag) {
    for (const tb::Event& e : events)
        for (const auto& v : e.summary().value())
            if (v.tag() == tag) return &v;
    return nullptr;
}

Batch sample_2d(int64_t size) {
    Batch b;
    b.n = 1;
    b.channels = 2;
    b.spatial = {size, size};
    for (int64_t c = 0; c < 2; ++c)
        for (int64_t i = 0; i < size * size; ++i) b.images.push_back(float((i + c) % 7) - 3.f);
    for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x) b.masks.push_back(y > size / 4 && y < size / 2 && x > size / 4 ? 1.f : 0.f);
    b.indices = {0};
    return b;
}

TrainOptions tiny_options(const std::string& logdir) {
    TrainOptions o;
    o.model.dims = 2;
    o.model.in_channels = 2;
    o.model.base_filters = 4;
    o.model.depth = 1;
    o.input_size = {16, 16};
    o.batch_size = 2;
    o.logdir = logdir;
    o.command_line = "unet_train --filters 4 --depth 1";
    return o;
}

}  // namespace

TEST(SamplePictures, AxialSliceWithMostTumourAndItsSize) {
    const Dims spatial = {6, 8, 10};
    std::vector<float> mask(6 * 80, 0.f), images(2 * 6 * 80, 1.f);
    for (int i = 0; i < 5; ++i) mask[size_t(2 * 80 + i)] = 1.f;
    for (int i = 0; i < 9; ++i) mask[size_t(4 * 80 + 10 + i)] = 1.f;
    EXPECT_EQ(slice_with_most_tumour(mask.data(), spatial), 4);
    std::vector<float> empty(6 * 80, 0.f);
    EXPECT_EQ(slice_with_most_tumour(empty.data(), spatial), 3);  // none: the middle one
    EXPECT_EQ(slice_with_most_tumour(mask.data(), Dims{8, 10}), 0);

    SamplePictures p(images.data(), 2, mask.data(), spatial);
    EXPECT_EQ(p.slice(), 4);
    EXPECT_EQ(p.scale(), 13);  // 10 pixels -> at least 128
    const RgbImage truth = p.truth();
    EXPECT_EQ(truth.width, 130);
    EXPECT_EQ(truth.height, 104);
    // Pixel (x, y) = (0, 1) of the slice is tumour; (0, 0) is not.
    RgbImage t = truth;
    EXPECT_EQ(t.at(0, 13)[0], 255);
    EXPECT_EQ(t.at(0, 0)[0], 0);
}

TEST(SamplePictures, OverlayColours) {
    const Dims spatial = {128, 128};
    std::vector<float> images(128 * 128, 0.f), mask(128 * 128, 0.f), prob(128 * 128, 0.f);
    for (size_t i = 0; i < images.size(); ++i) images[i] = float(i % 50) + 1.f;
    mask[0] = 1.f, prob[0] = 0.9f;  // both: yellow
    mask[1] = 1.f;                  // truth only: red
    prob[2] = 0.6f;                 // prediction only: green
    SamplePictures p(images.data(), 1, mask.data(), spatial);
    EXPECT_EQ(p.scale(), 1);
    RgbImage o = p.overlay(prob.data());
    auto red_ish = [](const uint8_t* px) { return px[0] > 150 && px[1] < 100 && px[2] < 100; };
    auto green_ish = [](const uint8_t* px) { return px[1] > 150 && px[0] < 100 && px[2] < 100; };
    auto yellow_ish = [](const uint8_t* px) { return px[0] > 150 && px[1] > 150 && px[2] < 100; };
    EXPECT_TRUE(yellow_ish(o.at(0, 0)));
    EXPECT_TRUE(red_ish(o.at(1, 0)));
    EXPECT_TRUE(green_ish(o.at(2, 0)));
    const uint8_t* grey = o.at(3, 0);
    EXPECT_TRUE(grey[0] == grey[1] && grey[1] == grey[2]);
    RgbImage pred = p.prediction(prob.data());
    EXPECT_EQ(pred.at(0, 0)[0], uint8_t(0.9f * 255 + 0.5f));
    EXPECT_EQ(pred.at(5, 5)[1], 0);
}

TEST(Summaries, PluginDataParsesAsTheHParamsMessages) {
    const tb::Summary::Value start =
        hparams_session_start({{"learning_rate", 0.002}, {"optimizer", std::string("adam")}, {"amsgrad", true}}, 123.5);
    EXPECT_EQ(start.tag(), "_hparams_/session_start_info");
    EXPECT_EQ(start.metadata().plugin_data().plugin_name(), "hparams");
    EXPECT_EQ(start.tensor().dtype(), tb::DT_FLOAT);
    tb::hparams::HParamsPluginData data;
    ASSERT_TRUE(data.ParseFromString(start.metadata().plugin_data().content()));
    EXPECT_EQ(data.version(), 0);
    ASSERT_TRUE(data.has_session_start_info());
    const auto& h = data.session_start_info().hparams();
    EXPECT_DOUBLE_EQ(h.at("learning_rate").number_value(), 0.002);
    EXPECT_EQ(h.at("optimizer").string_value(), "adam");
    EXPECT_TRUE(h.at("amsgrad").bool_value());
    EXPECT_EQ(data.session_start_info().start_time_secs(), 123.5);

    const tb::Summary::Value end = hparams_session_end(tb::hparams::STATUS_SUCCESS, 200);
    ASSERT_TRUE(data.ParseFromString(end.metadata().plugin_data().content()));
    EXPECT_EQ(data.session_end_info().status(), tb::hparams::STATUS_SUCCESS);

    HParamColumn lr, opt;
    lr.name = "learning_rate";
    lr.has_interval = true, lr.min = 1e-4, lr.max = 1e-2;
    opt.name = "optimizer";
    opt.type = tb::hparams::DATA_TYPE_STRING;
    opt.choices = {std::string("adam"), std::string("sgd")};
    const tb::Summary::Value exp = hparams_experiment({lr, opt}, {{"val/dice", "validation", tb::hparams::DATASET_VALIDATION}}, 1);
    ASSERT_TRUE(data.ParseFromString(exp.metadata().plugin_data().content()));
    ASSERT_EQ(data.experiment().hparam_infos_size(), 2);
    EXPECT_EQ(data.experiment().hparam_infos(0).domain_interval().max_value(), 1e-2);
    EXPECT_EQ(data.experiment().hparam_infos(1).domain_discrete().values(1).string_value(), "sgd");
    EXPECT_EQ(data.experiment().metric_infos(0).name().group(), "validation");
}

TEST(Summaries, TextIsAScalarStringTensorForTheTextPlugin) {
    const tb::Summary::Value t = text_summary("config/resolved", "    a = 1\n");
    EXPECT_EQ(t.metadata().plugin_data().plugin_name(), "text");
    EXPECT_EQ(t.tensor().dtype(), tb::DT_STRING);
    EXPECT_EQ(t.tensor().tensor_shape().dim_size(), 0);
    ASSERT_EQ(t.tensor().string_val_size(), 1);
    EXPECT_EQ(t.tensor().string_val(0), "    a = 1\n");
}

TEST(TensorBoardHooks, WritesTheThreeEventFilesOfARun) {
    TempDir dir;
    const std::string logdir = dir.path() + "/runs/a";
    const TrainOptions o = tiny_options(logdir);
    UNet model(o.model);
    {
        TensorBoardHooks hooks(true, 0);
        const Batch sample = sample_2d(16);
        hooks.on_start(o, sample);
        for (int64_t step = 2; step <= 6; step += 2) {
            StepReport r;
            r.step = step;
            r.loss = 1.0 / double(step);
            r.dice = 0.1 * double(step);
            r.learning_rate = 0.002;
            hooks.on_step(r);
            if (step == 4) hooks.on_model(step, model.forward(sample.images.data(), 1, sample.spatial, false));
        }
        hooks.on_model(6, model.forward(sample.images.data(), 1, sample.spatial, false));
        // the epoch end at a step that already has pictures
        hooks.on_model(6, model.forward(sample.images.data(), 1, sample.spatial, false));
        EpochReport e;
        e.step = 6;
        e.train_loss = 0.5;
        e.validation.dice[0] = 1.5, e.validation.loss = 0.6, e.validation.samples = 2;
        EXPECT_TRUE(hooks.on_epoch(e, model.store()));
        RunSummary s;
        s.status = "completed";
        s.steps = 6;
        s.best_val_dice = 0.75;
        hooks.on_end(s);
    }
    const auto train = events_in(logdir + "/train");
    const auto val = events_in(logdir + "/validation");
    const auto session = events_in(logdir);
    const auto t = tag_steps(train), v = tag_steps(val), h = tag_steps(session);
    EXPECT_EQ(t.at("train/loss"), (std::vector<int64_t>{2, 4, 6}));
    for (const char* tag : {"train/dice", "learning_rate", "perf/samples_per_sec", "perf/step_time",
                            "perf/comm_fraction", "perf/data_wait_fraction"})
        EXPECT_EQ(t.at(tag).size(), 3u) << tag;
    EXPECT_EQ(t.at("train/epoch_loss"), std::vector<int64_t>{6});
    EXPECT_EQ(t.at("config/resolved"), std::vector<int64_t>{0});
    EXPECT_EQ(t.at("config/command_line"), std::vector<int64_t>{0});
    EXPECT_EQ(find_value(train, "config/command_line")->tensor().string_val(0), "    unet_train --filters 4 --depth 1\n");
    EXPECT_FLOAT_EQ(find_value(train, "train/loss")->simple_value(), 0.5f);
    // One weight and one gradient histogram per parameter tensor.
    size_t weights = 0, gradients = 0;
    for (const auto& [tag, steps] : t) {
        weights += tag.rfind("weights/", 0) == 0;
        gradients += tag.rfind("gradients/", 0) == 0;
    }
    EXPECT_EQ(weights, model.store().views().size());
    EXPECT_EQ(gradients, model.store().views().size());
    const auto* hist = find_value(train, "weights/" + model.store().views()[0].name);
    ASSERT_NE(hist, nullptr);
    EXPECT_EQ(hist->histo().num(), double(model.store().views()[0].count));

    EXPECT_EQ(v.at("val/dice"), std::vector<int64_t>{6});
    EXPECT_FLOAT_EQ(find_value(val, "val/dice")->simple_value(), 0.75f);
    for (const char* tag : {"val/loss", "val/sensitivity", "val/specificity"}) EXPECT_EQ(v.at(tag).size(), 1u) << tag;
    EXPECT_EQ(v.at("images/input"), std::vector<int64_t>{0});
    EXPECT_EQ(v.at("images/ground_truth"), std::vector<int64_t>{0});
    EXPECT_EQ(v.at("images/prediction"), (std::vector<int64_t>{4, 6}));
    EXPECT_EQ(v.at("images/overlay"), (std::vector<int64_t>{4, 6}));
    const auto* img = find_value(val, "images/overlay");
    EXPECT_EQ(img->image().width(), 128);
    EXPECT_EQ(img->image().height(), 128);
    EXPECT_EQ(img->image().encoded_image_string().substr(1, 3), "PNG");
    EXPECT_EQ(v.at("val/best_dice"), std::vector<int64_t>{6});

    EXPECT_EQ(h.at("_hparams_/session_start_info"), std::vector<int64_t>{0});
    EXPECT_EQ(h.at("_hparams_/session_end_info"), std::vector<int64_t>{6});
    tb::hparams::HParamsPluginData start, end;
    ASSERT_TRUE(start.ParseFromString(find_value(session, "_hparams_/session_start_info")->metadata().plugin_data().content()));
    ASSERT_TRUE(end.ParseFromString(find_value(session, "_hparams_/session_end_info")->metadata().plugin_data().content()));
    const auto& hp = start.session_start_info().hparams();
    std::set<std::string> names;
    for (const auto& [name, value] : hp) names.insert(name);
    EXPECT_EQ(names, (std::set<std::string>{"learning_rate", "optimizer", "beta1", "beta2", "amsgrad", "batch_size",
                                            "filters", "depth", "norm", "dropout", "loss", "upsampling", "dims", "labels", "objective"}));
    EXPECT_EQ(hp.at("filters").number_value(), 4);
    EXPECT_EQ(hp.at("norm").string_value(), "none");
    EXPECT_EQ(end.session_end_info().status(), tb::hparams::STATUS_SUCCESS);
}

TEST(TensorBoardHooks, FailureMarksTheSessionFailed) {
    TempDir dir;
    const TrainOptions o = tiny_options(dir.path() + "/run");
    {
        TensorBoardHooks hooks(true, 0);
        hooks.on_start(o, Batch());  // no sample: no pictures
        hooks.on_failure("loss is NaN at step 3");
        RunSummary s;
        s.status = "completed";
        hooks.on_end(s);  // ignored: the session already ended
    }
    const auto session = events_in(dir.path() + "/run");
    EXPECT_EQ(tag_steps(session).at("_hparams_/session_end_info").size(), 1u);
    tb::hparams::HParamsPluginData end;
    ASSERT_TRUE(end.ParseFromString(find_value(session, "_hparams_/session_end_info")->metadata().plugin_data().content()));
    EXPECT_EQ(end.session_end_info().status(), tb::hparams::STATUS_FAILURE);
    const auto train = events_in(dir.path() + "/run/train");
    EXPECT_EQ(find_value(train, "run/summary")->tensor().string_val(0), "failed: loss is NaN at step 3");
    EXPECT_EQ(find_value(events_in(dir.path() + "/run/validation"), "images/input"), nullptr);
}

TEST(TensorBoardHooks, NonWriterRankWritesNothing) {
    TempDir dir;
    const TrainOptions o = tiny_options(dir.path() + "/run");
    UNet model(o.model);
    TensorBoardHooks hooks(false, 0);
    const Batch sample = sample_2d(16);
    hooks.on_start(o, sample);
    hooks.on_model(1, model.forward(sample.images.data(), 1, sample.spatial, false));
    EXPECT_TRUE(hooks.on_epoch(EpochReport(), model.store()));
    hooks.on_end(RunSummary());
    EXPECT_FALSE(fs::exists(dir.path() + "/run"));
    EXPECT_TRUE(hooks.logdir().empty());
}

TEST(TensorBoardHooks, UnwritableLogdirStopsAtStart) {
    TempDir dir;
    const std::string file = dir.path() + "/not_a_dir";
    std::ofstream(file) << "x";
    TensorBoardHooks hooks(true, 0);
    try {
        hooks.on_start(tiny_options(file + "/run"), Batch());
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    }
    hooks.on_failure("could not start");  // what unet_train does next: nothing to write to
    EXPECT_TRUE(hooks.logdir().empty());
}

// The run directory is writable but its train/ sub-directory is not (a file is in the way): the
// session file was already created when the second one fails.
TEST(TensorBoardHooks, SecondDirectoryBlockedStopsAtStartAndStaysInert) {
    TempDir dir;
    fs::create_directories(dir.path() + "/run");
    std::ofstream(dir.path() + "/run/train") << "x";
    TensorBoardHooks hooks(true, 0);
    EXPECT_THROW(hooks.on_start(tiny_options(dir.path() + "/run"), sample_2d(16)), std::runtime_error);
    hooks.on_failure("could not start");
    hooks.on_end(RunSummary());
    EXPECT_TRUE(hooks.logdir().empty());
}
