#include "unet/train/train_options.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "unet/train/json_config.h"
#include "unet/core/check.h"

namespace po = boost::program_options;

namespace unet {

Dims parse_size_list(const std::string& flag, const std::string& text) {
    Dims out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        try {
            size_t pos = 0;
            const long long v = std::stoll(item, &pos);
            if (pos != item.size() || v <= 0) throw std::invalid_argument(item);
            out.push_back(v);
        } catch (const std::exception&) {
            throw UsageError("--" + flag + ": expected comma-separated positive integers, got '" + text + "'");
        }
    }
    if (out.empty()) throw UsageError("--" + flag + ": expected comma-separated positive integers, got '" + text + "'");
    return out;
}

namespace {

struct RawOptions {
    std::string input_size, upsampling, norm, loss, optimizer, conv_algorithm, patch, checkpoint_every;
    bool use_upsampling = false;
    int depth = 0;
    int64_t filters = 0;
};

po::options_description describe_flags(TrainOptions& o, RawOptions& r) {
    po::options_description model("Model");
    model.add_options()
        ("dims", po::value(&o.model.dims)->default_value(2), "2 (slices) or 3 (volumes)")
        ("input_size", po::value(&r.input_size)->default_value("128,128"), "spatial size H,W or D,H,W (each a multiple of 2^depth)")
        ("in_channels", po::value(&o.model.in_channels)->default_value(4), "input channels (MSD: 4 modalities)")
        ("filters", po::value(&r.filters)->default_value(32), "filters at the first level; doubled at each level")
        ("depth", po::value(&r.depth)->default_value(4), "number of poolings")
        ("upsampling", po::value(&r.upsampling)->default_value("transposed"), "transposed | nearest | linear")
        ("use_upsampling", po::bool_switch(&r.use_upsampling), "Intel's flag: nearest up-sampling instead of transposed convolutions")
        ("norm", po::value(&r.norm)->default_value("none"), "none | batch | group")
        ("norm_groups", po::value(&o.model.norm_groups)->default_value(8), "groups for --norm group (gcd with the channel count)")
        ("dropout", po::value(&o.model.dropout)->default_value(0.f), "dropout rate after the two deepest encoder blocks")
        ("conv_algorithm", po::value(&r.conv_algorithm)->default_value("winograd"),
         "winograd | direct: Winograd for 2D 3x3 convolutions with 16-channel multiples (about 4x faster "
         "on the first level; slightly different rounding), direct everywhere else");
    po::options_description train("Training");
    train.add_options()
        ("batch_size", po::value(&o.batch_size)->default_value(8), "global batch size (split over workers)")
        ("epochs", po::value(&o.epochs)->default_value(10), "epochs")
        ("steps", po::value(&o.steps)->default_value(0), "stop after this many steps (0: run all epochs)")
        ("loss", po::value(&r.loss)->default_value("log_dice"), "dice | log_dice | bce | dice_bce")
        ("seed", po::value(&o.seed)->default_value(42), "seed for initialisation, data order, dropout")
        ("data", po::value(&o.data), "prepared HDF5 dataset (unet_prepare); without it, generated in-memory data")
        ("patch", po::value(&r.patch), "3D: train on random patches D,H,W (default: full volumes)")
        ("fg_fraction", po::value(&o.fg_fraction)->default_value(0.33f), "share of patches centred on a tumour voxel")
        ("augment", po::bool_switch(&o.augment), "random flips and intensity scale/shift")
        ("toy_samples", po::value(&o.toy_samples)->default_value(32), "size of the generated in-memory dataset")
        ("print_every", po::value(&o.print_every)->default_value(10), "print a progress line every N steps")
        ("image_every", po::value(&o.image_every)->default_value(50),
         "TensorBoard pictures of a fixed validation sample every N steps (0: once per epoch)")
        ("logdir", po::value(&o.logdir), "run directory for training.log and checkpoints (default runs/<date-time>)")
        ("checkpoint_every", po::value(&r.checkpoint_every)->default_value("0"),
         "checkpoint every N steps, or every N seconds with a suffix s (\"300s\"); 0: at the end and on SIGTERM/SIGINT")
        ("resume", po::value(&o.resume), "continue from a checkpoint file, or \"auto\": the latest in --logdir");
    po::options_description opt("Optimizer");
    opt.add_options()
        ("optimizer", po::value(&r.optimizer)->default_value("adam"), "adam | sgd")
        ("beta1", po::value(&o.optimizer.beta1)->default_value(0.9f), "Adam beta1")
        ("beta2", po::value(&o.optimizer.beta2)->default_value(0.999f), "Adam beta2")
        ("epsilon", po::value(&o.optimizer.epsilon)->default_value(1e-8f), "Adam epsilon")
        ("amsgrad", po::bool_switch(&o.optimizer.amsgrad), "AMSGrad variant of Adam")
        ("momentum", po::value(&o.optimizer.momentum)->default_value(0.9f), "SGD momentum")
        ("nesterov", po::bool_switch(&o.optimizer.nesterov), "Nesterov momentum for SGD")
        ("weight_decay", po::value(&o.optimizer.weight_decay)->default_value(0.f), "L2 weight decay");
    po::options_description lr("Learning rate");
    lr.add_options()
        ("learningrate", po::value(&o.schedule.learningrate)->default_value(0.0005f), "initial learning rate")
        ("const_learningrate", po::bool_switch(&o.schedule.const_learningrate), "no decay")
        ("decay_steps", po::value(&o.schedule.decay_steps)->default_value(150), "steps over which the rate falls to lr_fraction")
        ("lr_fraction", po::value(&o.schedule.lr_fraction)->default_value(0.25f), "lr * lr_fraction^(step / decay_steps)")
        ("warmup_steps", po::value(&o.schedule.warmup_steps)->default_value(0), "linear warm-up steps")
        ("scale_lr", po::bool_switch(&o.schedule.scale_by_workers), "multiply the rate by the number of workers");
    po::options_description rt("Runtime");
    rt.add_options()
        ("step_timeout", po::value(&o.step_timeout)->default_value(600),
         "seconds the parameter server waits for a worker's step before stopping the job (0: forever)")
        ("sync", po::value(&o.sync)->default_value("ps"),
         "under mpirun: ps (rank 0 parameter server, ranks 1..N-1 workers) or allreduce (every rank a worker)")
        ("num_ps", po::value(&o.num_ps)->default_value(1),
         "--sync ps: number of parameter-server ranks (0..K-1), each owning a shard of the parameters")
        ("bucket_mb", po::value(&o.bucket_mb)->default_value(1.0),
         "gradients leave in buckets of about this many MiB while backward runs")
        ("num_threads", po::value(&o.num_threads)->default_value(0), "OpenMP threads (0: OMP_NUM_THREADS or all cores)")
        ("num_inter_threads", po::value(&o.num_inter_threads)->default_value(1), "threads outside the compute pool (data prefetch)")
        ("blocktime", po::value(&o.blocktime)->default_value(-1),
         "Intel's KMP_BLOCKTIME in ms, mapped onto GNU OpenMP: 0 passive wait, >= 1000 active, else GOMP_SPINCOUNT "
         "(command line only; -1 leaves the environment alone)")
        ("config", po::value(&o.config_file), "INI settings file; the command line wins")
        ("help,h", "show this help");
    po::options_description bench("Benchmark");
    bench.add_options()
        ("benchmark", po::bool_switch(&o.benchmark), "train on random data of --input_size for --steps and print one JSON line")
        ("bench_warmup", po::value(&o.warmup_steps_bench)->default_value(1), "untimed steps before --steps");
    po::options_description tune("Hyperparameter tuning (--tune)");
    tune.add_options()
        ("tune", po::value(&o.tune_file), "search-space INI file: run a hyperparameter search (see README)")
        ("group_size", po::value(&o.group_size)->default_value(1),
         "under mpirun: ranks per trial; world rank 0 coordinates, ranks 1..N-1 form groups of this size")
        ("trials", po::value(&o.trials)->default_value(0), "random search: trials to sample; grid: at most this many (0: all)")
        ("search", po::value(&o.search)->default_value("grid"), "grid | random (seeded by --seed)")
        ("scheduler", po::value(&o.scheduler)->default_value("fifo"), "fifo | asha | median: early stopping of trials")
        ("grace_period", po::value(&o.grace_period)->default_value(1), "epochs a trial runs before it can be stopped")
        ("reduction_factor", po::value(&o.reduction_factor)->default_value(3), "asha: keep the best 1/N at each rung")
        ("max_failures", po::value(&o.max_failures)->default_value(0), "retries of a failed trial")
        ("num_replicas", po::value(&o.num_replicas)->default_value(0),
         "DistMIS: workers per trial (group size, plus a parameter server with --sync ps) and global batch factor")
        ("batch_size_per_replica", po::value(&o.batch_size_per_replica)->default_value(0),
         "DistMIS: per-worker batch; the global batch is this times num_replicas")
        ("debug", po::bool_switch(&o.debug), "DistMIS: a progress line every step");
    po::options_description all("unet_train: train a 2D or 3D UNet for brain-tumour segmentation\n\nUsage: unet_train [flags]\n");
    all.add(model).add(train).add(opt).add(lr).add(rt).add(bench).add(tune);
    return all;
}

}  // namespace

namespace {
void resolve(TrainOptions& o, const RawOptions& r, const po::variables_map& vm);
void resolve_tuning(TrainOptions& o, const po::variables_map& vm);
}

bool is_train_flag(const std::string& name) {
    TrainOptions o;
    RawOptions r;
    return describe_flags(o, r).find_nothrow(name, false) != nullptr;
}

bool parse_train_options(int argc, char** argv, TrainOptions& o, const std::string& overrides,
                         const TuneSettings& tune_settings) {
    RawOptions r;
    po::options_description flags = describe_flags(o, r);
    po::variables_map vm;
    for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);
    // Program_options keeps the first value stored for a flag: layers go in from the strongest.
    auto store_settings = [&](const std::string& text) {
        std::istringstream in(text);
        po::store(po::parse_config_file(in, flags), vm);
    };
    try {
        if (!overrides.empty()) store_settings(overrides);
        po::store(po::parse_command_line(argc, argv, flags), vm);
        if (vm.count("help")) {
            std::cout << flags << "\n";
            return false;
        }
        if (vm.count("tune") && tune_settings) store_settings(tune_settings(vm["tune"].as<std::string>()));
        if (vm.count("config")) {
            const std::string file = vm["config"].as<std::string>();
            std::ifstream in(file);
            if (!in) throw UsageError("--config: cannot read '" + file + "'");
            std::stringstream text;
            text << in.rdbuf();
            store_settings(is_json_config(file) ? json_config_to_settings(text.str(), file) : text.str());
        }
        po::notify(vm);
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }
    resolve(o, r, vm);
    return true;
}

TrainOptions parse_settings_text(const std::string& text) {
    TrainOptions o;
    RawOptions r;
    po::options_description flags = describe_flags(o, r);
    po::variables_map vm;
    try {
        std::istringstream in(text);
        po::store(po::parse_config_file(in, flags), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw UsageError(std::string("settings: ") + e.what());
    }
    resolve(o, r, vm);
    return o;
}

namespace {

// Turns the raw strings into typed options and validates everything (UsageError naming the flag).
void resolve(TrainOptions& o, const RawOptions& r, const po::variables_map& vm) {
    o.model.base_filters = r.filters;
    o.model.depth = r.depth;
    o.model.seed = o.seed;
    o.model.norm = parse_norm(r.norm);
    o.model.upsampling = parse_upsampling(r.upsampling);
    if (r.use_upsampling && vm["upsampling"].defaulted()) o.model.upsampling = Upsampling::nearest;
    if (r.conv_algorithm != "winograd" && r.conv_algorithm != "direct")
        throw UsageError("--conv_algorithm: expected winograd or direct, got '" + r.conv_algorithm + "'");
    o.model.winograd = r.conv_algorithm == "winograd";
    o.loss = parse_loss(r.loss);
    o.optimizer.kind = r.optimizer;
    o.input_size = parse_size_list("input_size", r.input_size);
    if (vm["input_size"].defaulted() && o.model.dims == 3) o.input_size = {64, 64, 64};
    if (!r.patch.empty()) o.patch = parse_size_list("patch", r.patch);
    {
        const std::string& c = r.checkpoint_every;
        const bool seconds = !c.empty() && c.back() == 's';
        const std::string number = seconds ? c.substr(0, c.size() - 1) : c;
        try {
            size_t pos = 0;
            const double v = std::stod(number, &pos);
            if (pos != number.size() || v < 0 || (!seconds && v != double(int64_t(v)))) throw std::invalid_argument(c);
            if (seconds) o.checkpoint_every_seconds = v;
            else o.checkpoint_every_steps = int64_t(v);
        } catch (const std::exception&) {
            throw UsageError("--checkpoint_every: expected a number of steps or seconds like 300s, got '" + c + "'");
        }
    }
    if (o.sync != "ps" && o.sync != "allreduce") throw UsageError("--sync: expected ps or allreduce, got '" + o.sync + "'");
    if (o.resume == "auto" && o.logdir.empty()) throw UsageError("--resume auto: needs --logdir (where to look)");
    if (!(o.fg_fraction >= 0 && o.fg_fraction <= 1)) throw UsageError("--fg_fraction: expected a value in [0, 1]");
    o.model.validate(o.input_size);
    o.optimizer.validate();
    o.schedule.validate();
    if (o.batch_size < 1) throw UsageError("--batch_size: expected at least 1, got " + std::to_string(o.batch_size));
    if (o.epochs < 1) throw UsageError("--epochs: expected at least 1, got " + std::to_string(o.epochs));
    if (o.steps < 0) throw UsageError("--steps: expected 0 or more");
    if (o.benchmark && o.steps < 1) o.steps = 5;
    if (o.num_threads < 0) throw UsageError("--num_threads: expected 0 or more");
    if (o.toy_samples < 1) throw UsageError("--toy_samples: expected at least 1");
    if (o.print_every < 1) throw UsageError("--print_every: expected at least 1");
    if (o.num_ps < 1) throw UsageError("--num_ps: expected at least 1");
    if (o.num_ps > 1 && o.sync != "ps") throw UsageError("--num_ps: only with --sync ps");
    if (!(o.bucket_mb > 0)) throw UsageError("--bucket_mb: expected a positive size in MiB");
    if (o.image_every < 0) throw UsageError("--image_every: expected 0 or more");
    resolve_tuning(o, vm);
}

// DistMIS's keys become our sizes unless the flags they stand for were given; tuning flags checked.
void resolve_tuning(TrainOptions& o, const po::variables_map& vm) {
    if (o.num_replicas < 0) throw UsageError("--num_replicas: expected 0 or more");
    if (o.batch_size_per_replica < 0) throw UsageError("--batch_size_per_replica: expected 0 or more");
    if (o.num_replicas > 0 && vm["group_size"].defaulted()) o.group_size = o.num_replicas + (o.sync == "ps" ? 1 : 0);
    if (o.batch_size_per_replica > 0 && vm["batch_size"].defaulted())
        o.batch_size = int64_t(o.batch_size_per_replica) * std::max(1, o.num_replicas);
    if (o.debug && vm["print_every"].defaulted()) o.print_every = 1;
    if (o.group_size < 1) throw UsageError("--group_size: expected at least 1");
    if (o.trials < 0) throw UsageError("--trials: expected 0 or more");
    if (o.search != "grid" && o.search != "random") throw UsageError("--search: expected grid or random, got '" + o.search + "'");
    if (o.search == "random" && o.trials < 1 && !o.tune_file.empty())
        throw UsageError("--trials: random search needs the number of trials to sample");
    if (o.scheduler != "fifo" && o.scheduler != "asha" && o.scheduler != "median")
        throw UsageError("--scheduler: expected fifo, asha or median, got '" + o.scheduler + "'");
    if (o.grace_period < 1) throw UsageError("--grace_period: expected at least 1 epoch");
    if (o.reduction_factor < 2) throw UsageError("--reduction_factor: expected at least 2");
    if (o.max_failures < 0) throw UsageError("--max_failures: expected 0 or more");
    if (!o.tune_file.empty() && o.logdir.empty()) throw UsageError("--logdir: required with --tune (it holds every trial and the ledger)");
}

}  // namespace

std::string TrainOptions::describe() const {
    std::ostringstream os;
    os << "dims = " << model.dims << "\ninput_size = ";
    for (size_t i = 0; i < input_size.size(); ++i) os << (i ? "," : "") << input_size[i];
    os << "\nin_channels = " << model.in_channels << "\nfilters = " << model.base_filters << "\ndepth = " << model.depth
       << "\nupsampling = " << upsampling_name(model.upsampling) << "\nnorm = " << norm_name(model.norm)
       << "\nconv_algorithm = " << (model.winograd ? "winograd" : "direct") << "\nnorm_groups = " << model.norm_groups
       << "\ndropout = " << model.dropout << "\nbatch_size = " << batch_size
       << "\nepochs = " << epochs << "\nsteps = " << steps << "\nloss = " << loss_name(loss)
       << "\noptimizer = " << optimizer.kind << "\nbeta1 = " << optimizer.beta1 << "\nbeta2 = " << optimizer.beta2
       << "\nepsilon = " << optimizer.epsilon << "\namsgrad = " << optimizer.amsgrad << "\nmomentum = " << optimizer.momentum
       << "\nnesterov = " << optimizer.nesterov << "\nweight_decay = " << optimizer.weight_decay
       << "\nlearningrate = " << schedule.learningrate << "\nconst_learningrate = " << schedule.const_learningrate
       << "\ndecay_steps = " << schedule.decay_steps << "\nlr_fraction = " << schedule.lr_fraction
       << "\nwarmup_steps = " << schedule.warmup_steps << "\nseed = " << seed << "\nnum_threads = " << num_threads << "\n";
    return os.str();
}

}  // namespace unet
