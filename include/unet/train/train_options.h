// unet_train's flags: Boost.Program_options, read from an INI settings file (--config) first and
// then from the command line, which wins. Intel's UNet flags keep their names and meaning
// (--batch_size is the GLOBAL batch, --learningrate / --decay_steps / --lr_fraction /
// --const_learningrate, --use_upsampling, --num_threads, ...).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "unet/core/dims.h"
#include "unet/data/label_regions.h"
#include "unet/nn/loss.h"
#include "unet/nn/lr_schedule.h"
#include "unet/nn/optimizer.h"
#include "unet/nn/unet_config.h"

namespace unet {

struct TrainOptions {
    UNetConfig model;
    Regions regions = whole_tumour_region();  // --labels: one output channel per region
    // --objective: "mean" (over the regions) or a region's name (wt, tc, et): the validation Dice
    // that picks checkpoint_best.h5 and that the tuner compares.
    std::string objective = "mean";
    Dims input_size;            // spatial size (H,W or D,H,W)
    bool input_size_given = false;  // --input_size was set (not its default): with --data it must match
    int64_t batch_size = 8;     // global
    int epochs = 10;
    int64_t steps = 0;          // > 0: stop after this many steps (and, with --benchmark, time them)
    LossKind loss = LossKind::log_dice;
    OptimizerConfig optimizer;
    LrSchedule schedule;
    uint64_t seed = 42;
    int num_threads = 0;        // 0: OMP_NUM_THREADS, else thread_placement.h's share of the node
    int num_inter_threads = 1;
    int blocktime = -1;         // applied before start-up by unet_train's main (apply_blocktime)
    bool benchmark = false;
    bool check_only = false;    // --check_flags: validate the flags and settings files, run nothing
    int64_t warmup_steps_bench = 1;
    int64_t toy_samples = 32;   // in-memory generated dataset size (when no --data is given)
    std::string data;           // prepared HDF5 dataset (unet_prepare); empty: generated data
    Dims patch;                 // 3D training patch; empty: full samples
    float fg_fraction = 0.33f;  // share of patches centred on tumour
    bool augment = false;
    std::string logdir;              // run directory: training.log, checkpoints
    int64_t checkpoint_every_steps = 0;     // 0: only at the end (and on SIGTERM / SIGINT)
    double checkpoint_every_seconds = 0;    // alternative: a wall-clock interval
    double step_timeout = 600;       // seconds the server waits for a worker's step (0: forever)
    std::string sync = "ps";         // under mpirun: ps (rank 0 serves, others work) | allreduce
    int num_ps = 1;                  // --sync ps: ranks 0..num_ps-1 are servers, each owning a shard
    double bucket_mb = 1.0;          // gradients travel in buckets of about this many MiB
    std::string resume;              // checkpoint file, "auto" (latest in --logdir), or empty
    bool overwrite = false;          // start afresh in a --logdir that holds a run (run_directory.h)
    int print_every = 10;
    int64_t image_every = 50;        // TensorBoard pictures of a validation sample every N steps (0: per epoch)
    // 3D runs on a prepared dataset: score the whole validation volumes by sliding windows every
    // K epochs (and after the last); -1: auto (volume_validation.h's rule), 0: patches only.
    int val_whole_every = -1;
    std::string config_file;         // INI settings, or a DistMIS .json config (see json_config.h)
    std::string command_line;
    std::string console_tag;  // not a flag: prefixes this run's stderr lines (the tuner's "trial 3")

    // Hyperparameter tuning (--tune FILE; see include/unet/tune/tuner.h).
    std::string tune_file;           // search-space INI file; empty: train one model
    int group_size = 1;              // ranks per trial under mpirun (world rank 0 coordinates)
    int trials = 0;                  // random, tpe: samples; grid: at most this many (0: the whole grid)
    std::string search = "grid";     // grid | random | tpe
    int startup_trials = 10;         // tpe: random trials before the estimator takes over
    std::string scheduler = "fifo";  // fifo | asha | median | pbt
    int grace_period = 1;            // epochs before a trial can be stopped
    int reduction_factor = 3;        // asha: keep the best 1/reduction_factor at each rung
    int max_failures = 0;            // retries of a failed trial
    int perturbation_interval = 2;   // pbt: epochs per round
    double pbt_quantile = 0.25;      // pbt: the bottom fraction copies the top fraction
    // DistMIS config keys (usable as flags too): replicas per trial and the batch on each.
    int num_replicas = 0;
    int batch_size_per_replica = 0;
    bool debug = false;              // DistMIS's debug: a progress line every step

    // The index in `regions` of the --objective region; -1 for the mean.
    int objective_region() const;
    std::string describe() const;  // resolved configuration, one "key = value" per line
};

// The settings a --tune FILE contributes ("key = value" lines of its [fixed] and [tune] sections);
// the tuning floor supplies the reader (tune/search_space.h: tune_file_settings), so this floor
// knows nothing of search spaces. Throws UsageError naming the file.
using TuneSettings = std::function<std::string(const std::string& file)>;

// Parses argv. Returns false when --help was asked (help text already printed to stdout).
// Throws UsageError (one line naming the flag) for anything invalid.
// `overrides` ("key = value" lines, e.g. a tuning trial's hyperparameters) win over the command
// line, which wins over the --tune file's settings (from `tune_settings`; without a reader the
// file only names itself), which win over --config.
bool parse_train_options(int argc, char** argv, TrainOptions& out, const std::string& overrides = "",
                         const TuneSettings& tune_settings = {});

// Options from settings text ("key = value" lines, as TrainOptions::describe() writes and
// checkpoints store); flags not given keep their defaults. Throws UsageError.
TrainOptions parse_settings_text(const std::string& text);

bool is_train_flag(const std::string& name);  // a flag unet_train knows (for settings files)

Dims parse_size_list(const std::string& flag, const std::string& text);  // "128,128" -> {128,128}

}  // namespace unet
