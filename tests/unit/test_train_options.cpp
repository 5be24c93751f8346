// Flags and settings: the resolved configuration a checkpoint stores reads back to the same
// options, and the command line wins over a settings file.
#include <gtest/gtest.h>

#include <fstream>

#include "unet/train/rank_role.h"
#include "unet/train/train_options.h"
#include "unet/core/check.h"

using namespace unet;

namespace {
TrainOptions parse(std::vector<std::string> args) {
    args.insert(args.begin(), "unet_train");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    TrainOptions o;
    EXPECT_TRUE(parse_train_options(int(argv.size()), argv.data(), o));
    return o;
}
}  // namespace

TEST(TrainOptions, DescribedConfigurationReadsBackTheSame) {
    const TrainOptions o = parse({"--dims", "3", "--input_size", "32,48,64", "--filters", "12", "--depth", "2", "--norm",
                                  "group", "--norm_groups", "4", "--upsampling", "linear", "--optimizer", "adam",
                                  "--amsgrad", "--beta2", "0.99", "--learningrate", "0.001", "--dropout", "0.25",
                                  "--conv_algorithm", "direct", "--loss", "dice_bce", "--seed", "7"});
    const TrainOptions back = parse_settings_text(o.describe());
    EXPECT_EQ(back.describe(), o.describe());
    EXPECT_EQ(back.model.dims, 3);
    EXPECT_EQ(back.input_size, (Dims{32, 48, 64}));
    EXPECT_EQ(back.model.norm, NormKind::group);
    EXPECT_EQ(back.model.upsampling, Upsampling::linear);
    EXPECT_TRUE(back.optimizer.amsgrad);
    EXPECT_FALSE(back.model.winograd);
    EXPECT_EQ(back.seed, 7u);
}

TEST(TrainOptions, CommandLineWinsOverTheSettingsFile) {
    const std::string path = ::testing::TempDir() + "settings.ini";
    std::ofstream(path) << "filters = 16\ndepth = 3\nbatch_size = 4\n";
    const TrainOptions o = parse({"--config", path, "--depth", "2", "--input_size", "32,32"});
    EXPECT_EQ(o.model.base_filters, 16);
    EXPECT_EQ(o.model.depth, 2);
    EXPECT_EQ(o.batch_size, 4);
}

// A file without errors is stored in one parse, one with errors line by line: the same values
// either way, and the first error in the file (not the first kind of error) names its line.
TEST(TrainOptions, SettingsFileValuesAndTheLineOfItsFirstError) {
    const std::string path = ::testing::TempDir() + "lines.ini";
    std::ofstream(path) << "# comment\n; another\n\nfilters = 16 # trailing comment\n  depth=3\nbatch_size = 4\n";
    const TrainOptions o = parse({"--config", path, "--input_size", "32,32"});
    EXPECT_EQ(o.model.base_filters, 16);
    EXPECT_EQ(o.model.depth, 3);
    EXPECT_EQ(o.batch_size, 4);
    auto first_error = [&](const std::string& text) {
        std::ofstream(path) << text;
        try {
            parse({"--config", path});
        } catch (const UsageError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(first_error("depth = 3\nfiltres = 4\ndepth = 2\n"),
              "--config: " + path + ":2: unrecognised option 'filtres'");
    EXPECT_EQ(first_error("depth = 3\nfilters = 4\ndepth = 2\nfiltres = 4\n"),
              "--config: " + path + ":3: 'depth' is set again (first on line 1)");
    EXPECT_NE(first_error("depth = 3\n\nfilters = %value%\n").find(path + ":3: '%value%'"), std::string::npos);
    // a line Program_options finds invalid, holding the token of that message (the fuzzer's hang)
    EXPECT_NE(first_error("%op %invalid_line% tion%\n").find(path + ":1: '%invalid_line%'"), std::string::npos);
    // a lone or non-token '%' is text like any other
    EXPECT_EQ(first_error("logdir = runs/50%_of_data\n"), "no error");
}

TEST(TrainOptions, CheckpointIntervalInStepsOrSeconds) {
    EXPECT_EQ(parse({"--checkpoint_every", "50"}).checkpoint_every_steps, 50);
    EXPECT_DOUBLE_EQ(parse({"--checkpoint_every", "90s"}).checkpoint_every_seconds, 90.0);
    EXPECT_THROW(parse_settings_text("checkpoint_every = 5m\n"), UsageError);
    EXPECT_THROW(parse_settings_text("depth = 0\n"), UsageError);
}

TEST(TrainOptions, WholeVolumeValidationPeriod) {
    EXPECT_EQ(parse({}).val_whole_every, -1);  // auto
    EXPECT_EQ(parse({"--val_whole_every", "0"}).val_whole_every, 0);
    EXPECT_EQ(parse({"--val_whole_every", "5"}).val_whole_every, 5);
    EXPECT_THROW(parse_settings_text("val_whole_every = sometimes\n"), UsageError);
    EXPECT_THROW(parse_settings_text("val_whole_every = -2\n"), UsageError);
    EXPECT_THROW(parse_settings_text("val_whole_every = 2\ntune = t.ini\nlogdir = d\n"), UsageError);
    EXPECT_EQ(parse_settings_text("val_whole_every = 1\ntune = t.ini\nlogdir = d\n").val_whole_every, 1);
}

TEST(TrainOptions, WholeVolumeValidationRule) {
    // 2 cases x 27 windows of 32^3 against 3 forwards of 24 patches of 32^3: 54 <= 0.25 x 72 fails,
    // so every ceil(54 / 18) = 3 epochs; with 100 training samples every epoch.
    EXPECT_EQ(whole_volume_every(2, 27, 32768, 24, 32768), 3);
    EXPECT_EQ(whole_volume_every(2, 27, 32768, 100, 32768), 1);
    EXPECT_EQ(whole_volume_every(0, 27, 32768, 100, 32768), 1);
    RunSetup s;
    s.whole_every = 3;
    EXPECT_FALSE(s.whole_due(0, 10));
    EXPECT_TRUE(s.whole_due(2, 10));
    EXPECT_TRUE(s.whole_due(9, 10));  // after the last epoch always
    s.whole_every = 0;
    EXPECT_FALSE(s.whole_due(9, 10));
}
