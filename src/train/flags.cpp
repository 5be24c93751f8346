#include "unet/train/flags.h"

#include <boost/program_options.hpp>
#include <sstream>

namespace po = boost::program_options;

namespace unet {

namespace {

using Value = Flag::Value;

template <class T>
std::string setting_text(const T& v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

std::string setting_text(const Dims& d) { return dims_text(d); }

const char* const kCaption = "unet_train: train a 2D or 3D UNet for brain-tumour segmentation\n\nUsage: unet_train [flags]\n";

}  // namespace

const char* help_caption() { return kCaption; }

// A table (exempt from the length rule for functions): one row per flag, in --help's order.
const std::vector<Flag>& flag_table() {
    static const std::vector<Flag> table = {
    {"Model", "dims", "2 (slices) or 3 (volumes)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.model.dims)->default_value(2); },
     [](const TrainOptions& o) { return setting_text(o.model.dims); }, kConfig | kHParam | kBenchmark, FlagKind::number, "dims"},
    {"Model", "input_size", "spatial size H,W or D,H,W (each a multiple of 2^depth)",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.input_size)->default_value("128,128"); },
     [](const TrainOptions& o) { return setting_text(o.input_size); }, kConfig | kBenchmark, FlagKind::list, nullptr},
    {"Model", "in_channels", "input channels (MSD: 4 modalities)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.model.in_channels)->default_value(4); },
     [](const TrainOptions& o) { return setting_text(o.model.in_channels); }, kConfig | kBenchmark, FlagKind::number, nullptr},
    {"Model", "labels", "what the model segments: wt (whole tumour, labels 1-3), regions (wt,tc,et: BraTS's whole tumour, tumour core {2,3} and enhancing tumour {3}) or a list such as wt,et; one sigmoid output per region. tc and et need a dataset prepared with labels (format 2, from MSD NIfTI)",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.labels)->default_value("wt"); },
     [](const TrainOptions& o) { return setting_text(regions_text(o.regions)); }, kConfig | kHParam | kBenchmark, FlagKind::text, "labels"},
    {"Model", "filters", "filters at the first level; doubled at each level",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.filters)->default_value(32); },
     [](const TrainOptions& o) { return setting_text(o.model.base_filters); }, kConfig | kHParam | kBenchmark, FlagKind::number, "filters"},
    {"Model", "depth", "number of poolings",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.depth)->default_value(4); },
     [](const TrainOptions& o) { return setting_text(o.model.depth); }, kConfig | kHParam | kBenchmark, FlagKind::number, "depth"},
    {"Model", "upsampling", "transposed | nearest | linear",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.upsampling)->default_value("transposed"); },
     [](const TrainOptions& o) { return setting_text(upsampling_name(o.model.upsampling)); }, kConfig | kHParam | kBenchmark, FlagKind::text, "upsampling"},
    {"Model", "use_upsampling", "Intel's flag: nearest up-sampling instead of transposed convolutions",
     [](TrainOptions& , RawOptions& r) -> Value { return po::bool_switch(&r.use_upsampling); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Model", "norm", "none | batch | group",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.norm)->default_value("none"); },
     [](const TrainOptions& o) { return setting_text(norm_name(o.model.norm)); }, kConfig | kHParam | kBenchmark, FlagKind::text, "norm"},
    {"Model", "norm_groups", "groups for --norm group (gcd with the channel count)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.model.norm_groups)->default_value(8); },
     [](const TrainOptions& o) { return setting_text(o.model.norm_groups); }, kConfig, FlagKind::number, nullptr},
    {"Model", "dropout", "dropout rate after the two deepest encoder blocks",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.model.dropout)->default_value(0.f, "0"); },
     [](const TrainOptions& o) { return setting_text(o.model.dropout); }, kConfig | kHParam, FlagKind::number, "dropout"},
    {"Model", "conv_algorithm", "winograd | direct: Winograd for 2D 3x3 convolutions with 16-channel multiples (about 4x faster " "on the first level; slightly different rounding), direct everywhere else",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.conv_algorithm)->default_value("winograd"); },
     [](const TrainOptions& o) { return setting_text(o.model.winograd ? "winograd" : "direct"); }, kConfig | kBenchmark, FlagKind::text, nullptr},
    {"Training", "batch_size", "global batch size (split over workers)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.batch_size)->default_value(8); },
     [](const TrainOptions& o) { return setting_text(o.batch_size); }, kConfig | kHParam | kBenchmark, FlagKind::number, "batch_size"},
    {"Training", "epochs", "epochs",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.epochs)->default_value(10); },
     [](const TrainOptions& o) { return setting_text(o.epochs); }, kConfig, FlagKind::number, nullptr},
    {"Training", "steps", "stop after this many steps (0: run all epochs)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.steps)->default_value(0); },
     [](const TrainOptions& o) { return setting_text(o.steps); }, kConfig | kBenchmark, FlagKind::number, nullptr},
    {"Training", "loss", "dice | log_dice | bce | dice_bce",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.loss)->default_value("log_dice"); },
     [](const TrainOptions& o) { return setting_text(loss_name(o.loss)); }, kConfig | kHParam, FlagKind::text, "loss"},
    {"Training", "seed", "seed for initialisation, data order, dropout",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.seed)->default_value(42); },
     [](const TrainOptions& o) { return setting_text(o.seed); }, kConfig, FlagKind::number, nullptr},
    {"Training", "data", "prepared HDF5 dataset (unet_prepare); its samples fix --input_size and --in_channels. Without it, generated in-memory data",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.data); },
     [](const TrainOptions& o) { return setting_text(o.data); }, kAgreement, FlagKind::text, nullptr},
    {"Training", "patch", "3D: train on random patches D,H,W (default: full volumes)",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.patch); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Training", "fg_fraction", "share of patches centred on a tumour voxel",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.fg_fraction)->default_value(0.33f, "0.33"); },
     [](const TrainOptions& o) { return setting_text(o.fg_fraction); }, kConfig, FlagKind::number, nullptr},
    {"Training", "augment", "random flips and intensity scale/shift",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::bool_switch(&o.augment); },
     [](const TrainOptions& o) { return setting_text(o.augment); }, kConfig, FlagKind::flag, nullptr},
    {"Training", "toy_samples", "size of the generated in-memory dataset",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.toy_samples)->default_value(32); },
     [](const TrainOptions& o) { return setting_text(o.toy_samples); }, kConfig, FlagKind::number, nullptr},
    {"Training", "print_every", "print a progress line every N steps",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.print_every)->default_value(10); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Training", "image_every", "TensorBoard pictures of a fixed validation sample every N steps (0: once per epoch)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.image_every)->default_value(50); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Training", "objective", "the validation Dice that picks checkpoint_best.h5 and that --tune compares: mean (over the --labels regions) or one region (wt, tc or et)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.objective)->default_value("mean"); },
     [](const TrainOptions& o) { return setting_text(o.objective); }, kConfig | kHParam, FlagKind::text, "objective"},
    {"Training", "val_whole_every", "3D with --data: score the whole validation volumes by sliding windows (training patch, overlap 0.5, gaussian) every K epochs and after the last; they give val/dice, val/hd95 and checkpoint_best.h5. auto: every epoch when that costs at most a quarter of an epoch's training, else the K that averages to it (1 under --tune); 0: random patches only",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.val_whole_every)->default_value("auto"); },
     [](const TrainOptions& o) { return setting_text(o.val_whole_every); }, kAgreement, FlagKind::number, nullptr},
    {"Training", "logdir", "run directory for training.log and checkpoints (default runs/<date-time>)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.logdir); },
     [](const TrainOptions& o) { return setting_text(o.logdir); }, kAgreement, FlagKind::text, nullptr},
    {"Training", "checkpoint_every", "checkpoint every N steps, or every N seconds with a suffix s (\"300s\"); 0: at the end and on SIGTERM/SIGINT",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.checkpoint_every)->default_value("0"); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Training", "resume", "continue from a checkpoint file, or \"auto\": the latest in --logdir",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.resume); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Training", "overwrite", "start afresh in a --logdir that holds a run's checkpoints (without it such a run is refused: continue it with --resume auto)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::bool_switch(&o.overwrite); },
     nullptr, 0, FlagKind::flag, nullptr},
    {"Optimizer", "optimizer", "adam | sgd",
     [](TrainOptions& , RawOptions& r) -> Value { return po::value(&r.optimizer)->default_value("adam"); },
     [](const TrainOptions& o) { return setting_text(o.optimizer.kind); }, kConfig | kHParam, FlagKind::text, "optimizer"},
    {"Optimizer", "beta1", "Adam beta1",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.optimizer.beta1)->default_value(0.9f, "0.9"); },
     [](const TrainOptions& o) { return setting_text(o.optimizer.beta1); }, kConfig | kHParam, FlagKind::number, "beta1"},
    {"Optimizer", "beta2", "Adam beta2",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.optimizer.beta2)->default_value(0.999f, "0.999"); },
     [](const TrainOptions& o) { return setting_text(o.optimizer.beta2); }, kConfig | kHParam, FlagKind::number, "beta2"},
    {"Optimizer", "epsilon", "Adam epsilon",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.optimizer.epsilon)->default_value(1e-8f, "1e-8"); },
     [](const TrainOptions& o) { return setting_text(o.optimizer.epsilon); }, kConfig, FlagKind::number, nullptr},
    {"Optimizer", "amsgrad", "AMSGrad variant of Adam",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::bool_switch(&o.optimizer.amsgrad); },
     [](const TrainOptions& o) { return setting_text(o.optimizer.amsgrad); }, kConfig | kHParam, FlagKind::flag, "amsgrad"},
    {"Optimizer", "momentum", "SGD momentum",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.optimizer.momentum)->default_value(0.9f, "0.9"); },
     [](const TrainOptions& o) { return setting_text(o.optimizer.momentum); }, kConfig, FlagKind::number, nullptr},
    {"Optimizer", "nesterov", "Nesterov momentum for SGD",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::bool_switch(&o.optimizer.nesterov); },
     [](const TrainOptions& o) { return setting_text(o.optimizer.nesterov); }, kConfig, FlagKind::flag, nullptr},
    {"Optimizer", "weight_decay", "L2 weight decay",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.optimizer.weight_decay)->default_value(0.f, "0"); },
     [](const TrainOptions& o) { return setting_text(o.optimizer.weight_decay); }, kConfig, FlagKind::number, nullptr},
    {"Learning rate", "learningrate", "initial learning rate",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.schedule.learningrate)->default_value(0.0005f, "0.0005"); },
     [](const TrainOptions& o) { return setting_text(o.schedule.learningrate); }, kConfig | kHParam, FlagKind::number, "learning_rate"},
    {"Learning rate", "const_learningrate", "no decay",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::bool_switch(&o.schedule.const_learningrate); },
     [](const TrainOptions& o) { return setting_text(o.schedule.const_learningrate); }, kConfig, FlagKind::flag, nullptr},
    {"Learning rate", "decay_steps", "steps over which the rate falls to lr_fraction",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.schedule.decay_steps)->default_value(150); },
     [](const TrainOptions& o) { return setting_text(o.schedule.decay_steps); }, kConfig, FlagKind::number, nullptr},
    {"Learning rate", "lr_fraction", "lr * lr_fraction^(step / decay_steps)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.schedule.lr_fraction)->default_value(0.25f, "0.25"); },
     [](const TrainOptions& o) { return setting_text(o.schedule.lr_fraction); }, kConfig, FlagKind::number, nullptr},
    {"Learning rate", "warmup_steps", "linear warm-up steps",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.schedule.warmup_steps)->default_value(0); },
     [](const TrainOptions& o) { return setting_text(o.schedule.warmup_steps); }, kConfig, FlagKind::number, nullptr},
    {"Learning rate", "scale_lr", "multiply the rate by the number of workers",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::bool_switch(&o.schedule.scale_by_workers); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Runtime", "step_timeout", "seconds the parameter server waits for a worker's step before stopping the job (0: forever)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.step_timeout)->default_value(600); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Runtime", "sync", "under mpirun: ps (rank 0 parameter server, ranks 1..N-1 workers) or allreduce (every rank a worker)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.sync)->default_value("ps"); },
     [](const TrainOptions& o) { return setting_text(o.sync); }, kAgreement, FlagKind::text, nullptr},
    {"Runtime", "num_ps", "--sync ps: number of parameter-server ranks (0..K-1), each owning a shard of the parameters",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.num_ps)->default_value(1); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Runtime", "bucket_mb", "gradients leave in buckets of about this many MiB while backward runs",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.bucket_mb)->default_value(1.0); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Runtime", "num_threads", "OpenMP threads (0: OMP_NUM_THREADS, else the cores of the node shared among its computing ranks)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.num_threads)->default_value(0); },
     [](const TrainOptions& o) { return setting_text(o.num_threads); }, kConfig, FlagKind::number, nullptr},
    {"Runtime", "num_inter_threads", "threads outside the compute pool (data prefetch)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.num_inter_threads)->default_value(1); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Runtime", "blocktime", "Intel's KMP_BLOCKTIME in ms, mapped onto GNU OpenMP: 0 passive wait, >= 1000 active, else GOMP_SPINCOUNT " "(command line only; -1 leaves the environment alone)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.blocktime)->default_value(-1); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Runtime", "config", "INI settings file; the command line wins",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.config_file); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Runtime", "check_flags", "check every flag, settings file and named file, print 'flags ok' and exit 0 (or the one-line error, exit 2) without running",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::bool_switch(&o.check_only); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Runtime", "help,h", "show this help",
     nullptr,
     nullptr, 0, FlagKind::text, nullptr},
    {"Benchmark", "benchmark", "train on random data of --input_size for --steps and print one JSON line",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::bool_switch(&o.benchmark); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Benchmark", "bench_warmup", "untimed steps before --steps",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.warmup_steps_bench)->default_value(1); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "tune", "search-space INI file: run a hyperparameter search (see README)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.tune_file); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "group_size", "under mpirun: ranks per trial; world rank 0 coordinates, ranks 1..N-1 form groups of this size",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.group_size)->default_value(1); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "trials", "random and tpe search: trials to run; grid: at most this many (0: all)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.trials)->default_value(0); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "search", "grid | random | tpe (Bayesian: learns from finished trials); seeded by --seed",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.search)->default_value("grid"); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "startup_trials", "tpe: random trials before the estimator draws the others",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.startup_trials)->default_value(10); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "scheduler", "fifo | asha | median: early stopping of trials; pbt: population-based training",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.scheduler)->default_value("fifo"); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "grace_period", "epochs a trial runs before it can be stopped",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.grace_period)->default_value(1); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "reduction_factor", "asha: keep the best 1/N at each rung",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.reduction_factor)->default_value(3); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "perturbation_interval", "pbt: epochs per round (exploit and explore between rounds)",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.perturbation_interval)->default_value(2); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "pbt_quantile", "pbt: the bottom fraction copies a member of the top fraction each round",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.pbt_quantile)->default_value(0.25); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "max_failures", "retries of a failed trial",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.max_failures)->default_value(0); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "num_replicas", "DistMIS: workers per trial (group size, plus a parameter server with --sync ps) and global batch factor",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.num_replicas)->default_value(0); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "batch_size_per_replica", "DistMIS: per-worker batch; the global batch is this times num_replicas",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::value(&o.batch_size_per_replica)->default_value(0); },
     nullptr, 0, FlagKind::text, nullptr},
    {"Hyperparameter tuning (--tune)", "debug", "DistMIS: a progress line every step",
     [](TrainOptions& o, RawOptions& ) -> Value { return po::bool_switch(&o.debug); },
     nullptr, 0, FlagKind::text, nullptr},
    };
    return table;
}

po::options_description option_table(TrainOptions& o, RawOptions& r) {
    po::options_description all;  // the caption is printed by --help (help_caption)
    const std::vector<Flag>& table = flag_table();
    for (size_t i = 0; i < table.size();) {
        po::options_description group(table[i].group);
        auto add = group.add_options();
        for (const std::string name = table[i].group; i < table.size() && name == table[i].group; ++i) {
            if (table[i].value) add(table[i].name, table[i].value(o, r), table[i].help);
            else add(table[i].name, table[i].help);
        }
        all.add(group);
    }
    return all;
}

std::vector<FlagValue> flag_values(const TrainOptions& o, unsigned uses) {
    std::vector<FlagValue> out;
    for (const Flag& f : flag_table())
        if ((f.uses & uses) && f.setting) out.push_back({f.name, f.setting(o), f.kind, f.hparam ? f.hparam : ""});
    return out;
}

std::string settings_text(const TrainOptions& o, unsigned uses) {
    std::string text;
    for (const FlagValue& v : flag_values(o, uses)) text += v.name + " = " + v.value + "\n";
    return text;
}

}  // namespace unet
