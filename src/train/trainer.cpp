// The run loop of unet_train, the same on every rank: the rank's role (rank_role.h) does the
// work; here are resume, the epochs, the step and epoch lines, checkpoints, stop agreement,
// validation and the hooks.
#include "unet/train/trainer.h"

#include <omp.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <memory>

#include "unet/core/text.h"
#include "unet/core/stop_signals.h"
#include "unet/infer/case_prediction.h"
#include "unet/log/progress.h"
#include "unet/log/training_log.h"
#include "unet/train/rank_role.h"
#include "unet/train/run_directory.h"
#include "unet/train/training_state.h"

namespace unet {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool file_exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// runs/<date-time>, or runs/<date-time>-2, -3, ... when a run started in the same second took
// that name already (two commands of a script); rank 0 chooses and every rank uses its choice.
std::string default_logdir(Comm& comm) {
    std::string name;
    if (comm.is_root()) {
        char stamp[64];
        const std::time_t now = std::time(nullptr);
        std::tm tm{};
        localtime_r(&now, &tm);
        std::strftime(stamp, sizeof stamp, "runs/%Y%m%d-%H%M%S", &tm);
        name = stamp;
        for (int k = 2; file_exists(name); ++k) name = std::string(stamp) + "-" + std::to_string(k);
    }
    return comm.broadcast_text(0, name);
}

// Seconds per activity in the epoch so far, this rank's; totals over the ranks travel in the
// step control message (kTimingSlot) and in the epoch's validation sums.
struct RunTimes {
    static constexpr int kCount = 7;
    double compute = 0, comm = 0, update = 0, data = 0;
    bool worker = true;
    // compute, comm, server update, worker update, data (workers' values), workers, servers
    void put(double* v) const {
        const double w = worker ? 1 : 0;
        const double in[kCount] = {w * compute, w * comm, (1 - w) * update, w * update, w * data, w, 1 - w};
        std::copy(in, in + kCount, v);
    }
};

// The workers' mean seconds per activity from summed RunTimes (servers update side by side: their
// mean; without servers every rank updates).
struct Shares {
    double compute = 0, comm = 0, update = 0, data = 0;
    Shares() = default;
    explicit Shares(const double* v) {
        const double workers = std::max(1.0, v[5]);
        compute = v[0] / workers, comm = v[1] / workers, data = v[4] / workers;
        update = v[6] > 0 ? v[2] / v[6] : v[3] / workers;
    }
};

// The checkpoints' record of a dataset's input preprocessing ("" for generated data, or for a
// parameter server that cannot see the file: unet_predict then reads the dataset file itself).
std::string preprocessing_record(const std::string& data) {
    if (data.empty()) return "";
    try {
        return preprocessing_of(DatasetReader(data)).to_text();
    } catch (const std::exception&) {
        return "";
    }
}

// " (WT 0.91, TC 0.85, ET 0.80)" for a model of several regions; "" for one.
std::string regions_dice_text(const Regions& regions, const double* dice) {
    if (regions.size() < 2) return "";
    std::string s = " (";
    for (size_t k = 0; k < regions.size(); ++k) s += (k ? ", " : "") + regions[k].name + " " + fixed_text(dice[k], 4);
    return s + ")";
}

std::array<double, kMaxMetricChannels> per_region_dice(const MetricSums& m) {
    std::array<double, kMaxMetricChannels> d{};
    for (int k = 0; k < m.channels; ++k) d[size_t(k)] = m.mean_dice(k);
    return d;
}

class RunLoop {
   public:
    RunLoop(RankRole& role, Comm& comm, ControlChannel& control, TrainingHooks& hooks, TrainingLog& log)
        : role_(role), s_(role.setup()), o_(s_.o), comm_(comm), control_(control), hooks_(hooks), log_(log),
          latest_(o_.logdir + "/checkpoint_latest.h5"), best_(o_.logdir + "/checkpoint_best.h5"),
          bar_(comm.is_root() && o_.console_tag.empty()),
          preprocessing_(comm.is_root() ? preprocessing_record(o_.data) : "") {}
    RunSummary run();

   private:
    void resume();
    void banner();
    // One epoch; returns a final status ("interrupted") or "" to go on.
    std::string run_epoch(int epoch);
    void step_line(const StepResult& r, const StepControl& ctl, int epoch);
    // Validation, the epoch line and the epoch hooks; returns false when a hook stops the run.
    bool end_epoch(int epoch, bool completed);
    // The validation totals over the ranks, with the epoch's timings (the workers' means).
    MetricSums validate(int epoch, Shares* shares);
    // Collective: the whole validation volumes scored (totals over the ranks) into `r`, when due.
    void validate_whole(int epoch, EpochReport& r);
    void save(const std::string& path);
    void gather();  // collective: the whole model to rank 0 (once per step at most)
    void show_model();
    void log_peak_memory();  // collective: the workers' peak RSS against the estimate
    // This run's seconds, the sessions before a resume included.
    double training_seconds() const { return seconds_before_ + seconds_since(t_start_); }
    RunSummary finish(const std::string& status);
    void clear_epoch_sums() {
        p_.epoch_loss_sum = p_.epoch_dice_sum = 0;
        p_.epoch_region_dice_sums.fill(0);
    }

    RankRole& role_;
    const RunSetup& s_;
    const TrainOptions& o_;
    Comm& comm_;
    ControlChannel& control_;  // the steps' heartbeat; validation reports its end through it too
    TrainingHooks& hooks_;
    TrainingLog& log_;
    const std::string latest_, best_;
    TrainingProgress bar_;
    Progress p_;
    RunSummary summary_;
    RunTimes times_;
    double val_dice_ = 0;
    int64_t done_ = 0, first_step_ = 0, run_total_ = 0, gathered_at_ = -1;
    bool limit_ = false;
    int estimate_mib_ = 0;
    const std::string preprocessing_;  // what rank 0's checkpoints record of the data's preprocessing
    double seconds_before_ = 0;  // training seconds of the sessions before a resume
    Clock::time_point t_start_ = Clock::now(), t_checkpoint_ = Clock::now(), t_epoch_ = Clock::now();
};

RunSummary RunLoop::run() {
    resume();
    banner();
    catch_stop_signals();
    hooks_.on_start(o_, role_.picture_sample());
    summary_.epochs = p_.epoch;
    val_dice_ = std::max(0.0, p_.best_val_dice);
    limit_ = o_.steps > 0 && p_.step >= o_.steps;
    // The whole run's steps, for the terminal's ETA: every epoch's, or --steps if that comes first.
    const int64_t planned = o_.epochs * s_.steps_per_epoch;
    run_total_ = (o_.steps > 0 ? std::min(o_.steps, planned) : planned) - p_.step, first_step_ = p_.step;
    times_.worker = s_.worker >= 0;
    for (int epoch = p_.epoch; epoch < o_.epochs && !limit_; ++epoch) {
        const std::string status = run_epoch(epoch);
        if (!status.empty()) return finish(status);
        if (!end_epoch(epoch, !limit_ || p_.epoch_step >= s_.steps_per_epoch)) {
            save(latest_);
            log_.line("stopped early after epoch %d at step %lld", epoch + 1, (long long)p_.step);
            return finish("stopped early");
        }
    }
    save(latest_);
    log_.line("done: %lld steps in %.1fs of training, validation Dice %.4f (best %.4f)", (long long)p_.step,
              training_seconds(), val_dice_, p_.best_val_dice);
    log_peak_memory();
    return finish("completed");
}

void RunLoop::resume() {
    const std::string from = o_.resume == "auto" ? (file_exists(latest_) ? latest_ : "") : o_.resume;
    if (!from.empty()) {
        p_ = role_.restore(read_checkpoint(from), from);
        seconds_before_ = p_.train_seconds;
        log_.line("resumed from %s at step %lld (epoch %d, %lld steps into it)", from.c_str(), (long long)p_.step,
                  p_.epoch + 1, (long long)p_.epoch_step);
    } else if (o_.resume == "auto") {
        log_.line("--resume auto: no checkpoint in %s, starting fresh", o_.logdir.c_str());
    }
}

void RunLoop::banner() {
    const std::string roles = s_.servers == 0   ? (comm_.size() > 1 ? " (all-reduce)" : "")
                              : s_.servers == 1 ? " (rank 0 parameter server)"
                                                : " (ranks 0-" + std::to_string(s_.servers - 1) + " parameter servers)";
    log_.line("run directory %s; %d rank%s%s; command: %s", o_.logdir.c_str(), comm_.size(), comm_.size() > 1 ? "s" : "",
              roles.c_str(), o_.command_line.c_str());
    // Each rank's host (consecutive ranks on one host as one item), so a run across hosts shows where it ran.
    const std::string name = this_host();
    std::vector<std::string> hosts;
    for (int r = 0; r < comm_.size(); ++r) hosts.push_back(comm_.broadcast_text(r, name));
    std::string placed;
    for (int first = 0, r = 0; first < comm_.size() && comm_.size() > 1; first = r) {
        while (r < comm_.size() && hosts[r] == hosts[first]) ++r;
        placed += (first ? ", " : "") + std::string(r - first == 1 ? "rank " : "ranks ") + std::to_string(first) +
                  (r - first == 1 ? "" : "-" + std::to_string(r - 1)) + " on " + hosts[first];
    }
    if (!placed.empty()) log_.line("hosts: %s", placed.c_str());
    else log_.line("host: %s", name.c_str());
    // Each rank's OpenMP threads as it runs them (thread_placement.h's default or what was asked).
    std::string threads;
    for (int r = 0; r < comm_.size() && comm_.size() > 1; ++r)
        threads += (r ? " " : "") + comm_.broadcast_text(r, std::to_string(omp_get_max_threads()));
    if (!threads.empty()) log_.line("OpenMP threads per rank: %s", threads.c_str());
    // The first worker's estimate, in MiB for the one small collective, for the run's last line.
    estimate_mib_ = comm_.max(int((role_.print_summary() + (1 << 19)) >> 20));
    log_.line("data: %s, %lld training samples, %lld validation samples of %s, %lld steps per epoch",
              o_.data.empty() ? "generated in memory" : o_.data.c_str(), (long long)s_.train_samples,
              (long long)s_.val_samples, shape_text(o_.input_size).c_str(), (long long)s_.steps_per_epoch);
    if (s_.whole_every > 0)
        log_.line("validation: whole volumes by sliding windows %s, overlap %.2g, %s blending, every %d epoch%s and "
                  "after the last (--val_whole_every); patches every epoch",
                  dims_text(s_.whole_window.roi, "x").c_str(), s_.whole_window.overlap, blend_name(s_.whole_window.blend),
                  s_.whole_every, s_.whole_every > 1 ? "s" : "");
}

std::string RunLoop::run_epoch(int epoch) {
    // After a resume, the batches of this epoch already trained on are skipped: the order is a
    // function of (seed, epoch), so the rest comes out exactly as in the first run.
    const int64_t skip = epoch == p_.epoch ? p_.epoch_step : 0;
    role_.start_epoch(epoch, skip);
    p_.epoch = epoch;
    p_.epoch_step = skip;
    times_ = RunTimes{0, 0, 0, 0, s_.worker >= 0};
    if (skip == 0) clear_epoch_sums();  // a resumed epoch keeps its sums
    done_ = 0;
    t_epoch_ = Clock::now();
    for (;;) {
        // Ranks may see a signal, or a checkpoint come due by the clock, at different steps: the
        // step's control message carries both, so all checkpoint and stop together.
        StepControl ctl;
        ctl.stop = stop_signal();
        ctl.checkpoint = (o_.checkpoint_every_steps > 0 && (p_.step + 1) % o_.checkpoint_every_steps == 0) ||
                         (o_.checkpoint_every_seconds > 0 && seconds_since(t_checkpoint_) >= o_.checkpoint_every_seconds);
        times_.data = role_.data_wait_s();
        times_.put(ctl.sums.data() + kTimingSlot);
        StepResult r;
        if (!role_.step(p_.step, ctl, r)) return "";
        p_.epoch_loss_sum += r.loss, p_.epoch_dice_sum += r.dice;
        for (size_t k = 0; k < r.channel_dice.size(); ++k) p_.epoch_region_dice_sums[k] += r.channel_dice[k];
        times_.compute += r.compute_s, times_.comm += r.comm_s, times_.update += r.update_s;
        ++p_.step, ++p_.epoch_step, ++done_;
        bar_.update(epoch, o_.epochs, p_.epoch_step, s_.steps_per_epoch, r.loss, p_.step - first_step_, run_total_);
        if (p_.step % o_.print_every == 0) step_line(r, ctl, epoch);
        if (ctl.checkpoint || ctl.stop) {
            save(latest_);
            t_checkpoint_ = Clock::now();
        }
        if (ctl.stop) {
            log_.line("stopped by signal %d at step %lld; continue with --resume %s", ctl.stop, (long long)p_.step,
                      latest_.c_str());
            return "interrupted";
        }
        if (o_.image_every > 0 && p_.step % o_.image_every == 0) show_model();
        if (o_.steps > 0 && p_.step >= o_.steps) {
            limit_ = true;
            return "";
        }
    }
}

void RunLoop::step_line(const StepResult& r, const StepControl& ctl, int epoch) {
    const double elapsed = seconds_since(t_epoch_);
    const Shares sh(ctl.sums.data() + kTimingSlot);  // the epoch's timings up to this step
    StepReport report;
    report.step = p_.step;
    report.epoch = epoch;
    report.loss = r.loss;
    report.dice = r.dice;
    report.learning_rate = o_.schedule.at(p_.step - 1);
    report.samples_per_s = double(done_ * o_.batch_size) / elapsed;
    report.step_time_s = elapsed / double(done_);
    report.comm_fraction = sh.comm / elapsed;
    report.data_wait_fraction = sh.data / elapsed;
    hooks_.on_step(report);
    log_.line("step %lld  epoch %d  loss %.4f  dice %.4f  lr %.3g  %.1f samples/s  compute %.0f%% comm %.0f%% "
              "update %.0f%% data %.0f%%",
              (long long)p_.step, epoch + 1, r.loss, r.dice, report.learning_rate, report.samples_per_s,
              100 * sh.compute / elapsed, 100 * report.comm_fraction, 100 * sh.update / elapsed,
              100 * report.data_wait_fraction);
}

MetricSums RunLoop::validate(int epoch, Shares* shares) {
    // The workers split the validation batches (each with its own batch-norm statistics) and every
    // rank gets the totals, so all take the same best-checkpoint decision.
    const MetricSums m = role_.validate();
    control_.arrive("the validation after epoch " + std::to_string(epoch + 1));
    times_.data = role_.data_wait_s();
    double v[MetricSums::kWire + RunTimes::kCount];
    m.to_wire(v);
    times_.put(v + MetricSums::kWire);
    comm_.sum(v, MetricSums::kWire + RunTimes::kCount);
    *shares = Shares(v + MetricSums::kWire);
    MetricSums total(int(o_.model.out_channels));
    total.add_wire(v);
    return total;
}

void RunLoop::validate_whole(int epoch, EpochReport& r) {
    r.whole_volume_run = s_.whole_every > 0;
    if (!r.whole_volume_run || !(s_.whole_due(epoch, o_.epochs) || limit_)) return;
    const Clock::time_point t0 = Clock::now();
    r.whole = role_.validate_whole();
    control_.arrive("the whole-volume validation after epoch " + std::to_string(epoch + 1));
    comm_.sum(r.whole.data(), VolumeScoreSums::kFields);
    r.whole_scored = true;
    const int objective = o_.objective_region();
    val_dice_ = objective < 0 ? r.whole.mean_dice() : r.whole.mean(VolumeScoreSums::kDice, objective);
    std::string regions;  // "  (WT dice 0.9 hd95 3.1 mm, TC ...)" for region models
    for (size_t k = 0; k < o_.regions.size() && o_.regions.size() > 1; ++k)
        regions += (k ? ", " : "  (") + o_.regions[k].name + " dice " + fixed_text(r.whole.mean(VolumeScoreSums::kDice, int(k)), 4) +
                   " hd95 " + fixed_text(r.whole.mean(VolumeScoreSums::kHd95, int(k)), 2) + " mm" +
                   (k + 1 == o_.regions.size() ? ")" : "");
    log_.line("epoch %d/%d  val whole volumes dice %.4f hd95 %.2f mm sensitivity %.4f specificity %.4f%s  "
              "(%lld cases, %.1fs)",
              epoch + 1, o_.epochs, r.whole.mean_dice(), r.whole.mean_hd95(), r.whole.mean_sensitivity(),
              r.whole.mean_specificity(), regions.c_str(), (long long)r.whole.cases(), seconds_since(t0));
}

bool RunLoop::end_epoch(int epoch, bool completed) {
    const double epoch_s = seconds_since(t_epoch_);
    Shares sh;
    const MetricSums v = validate(epoch, &sh);
    const int objective = o_.objective_region();
    if (s_.whole_every == 0) val_dice_ = objective < 0 ? v.mean_dice() : v.mean_dice(objective);
    EpochReport er;
    er.epoch = epoch;
    er.step = p_.step;
    // Over all the epoch's steps, also those before a resume (their sums came with the checkpoint).
    const double steps = double(std::max<int64_t>(1, p_.epoch_step));
    er.train_loss = p_.epoch_loss_sum / steps;
    er.train_dice = p_.epoch_dice_sum / steps;
    for (size_t k = 0; k < er.train_region_dice.size(); ++k) er.train_region_dice[k] = p_.epoch_region_dice_sums[k] / steps;
    if (completed) {
        p_.epoch = epoch + 1;
        p_.epoch_step = 0;
        clear_epoch_sums();
    }
    er.validation = v;
    er.seconds = epoch_s;
    auto share = [&](double x) { return epoch_s > 0 ? 100.0 * x / epoch_s : 0.0; };
    // 3D training on patches validates on patches too: the line says so.
    const bool patches = o_.model.dims == 3 && !o_.patch.empty();
    const std::string train_regions = regions_dice_text(o_.regions, er.train_region_dice.data());
    const std::string val_regions = regions_dice_text(o_.regions, per_region_dice(v).data());
    log_.line("epoch %d/%d  train loss %.4f dice %.4f%s  val%s loss %.4f dice %.4f%s sensitivity %.4f specificity %.4f"
              "  %.1fs, data wait %.1f%%, communication %.1f%%, update %.1f%%",
              epoch + 1, o_.epochs, er.train_loss, er.train_dice, train_regions.c_str(), patches ? " patches" : "",
              v.mean_loss(), v.mean_dice(), val_regions.c_str(), v.mean_sensitivity(), v.mean_specificity(), epoch_s,
              share(sh.data), share(sh.comm), share(sh.update));
    validate_whole(epoch, er);
    er.val_dice = val_dice_;
    // With whole-volume validation, only the epochs that scored the volumes compete for best.
    if ((!er.whole_volume_run || er.whole_scored) && val_dice_ > p_.best_val_dice) {
        p_.best_val_dice = val_dice_;
        save(best_);
    }
    summary_.epochs = epoch + 1;
    show_model();
    gather();
    return comm_.max(hooks_.on_epoch(er, role_.model()) ? 0 : 1) == 0;
}

void RunLoop::save(const std::string& path) {
    gather();
    if (!comm_.is_root()) return;
    p_.train_seconds = training_seconds();
    write_checkpoint(path, capture_state(role_.model(), role_.optimizer(), p_, o_, preprocessing_));
    log_.line("checkpoint %s at step %lld", path.c_str(), (long long)p_.step);
}

void RunLoop::gather() {
    if (gathered_at_ == p_.step) return;  // nothing changes between steps: one gather serves them all
    gathered_at_ = p_.step;
    role_.gather_to_root();
}

void RunLoop::log_peak_memory() {
    const int peak = comm_.max(s_.worker >= 0 ? int(peak_rss_mib()) : 0);
    log_.line("peak RSS %d MiB on the busiest worker (estimated %d MiB)", peak, estimate_mib_);
}

void RunLoop::show_model() { hooks_.on_model(p_.step, role_.predict_sample()); }

RunSummary RunLoop::finish(const std::string& status) {
    summary_.status = status;
    summary_.steps = p_.step;
    summary_.final_val_dice = val_dice_;
    summary_.best_val_dice = std::max(0.0, p_.best_val_dice);
    summary_.seconds = training_seconds();
    hooks_.on_end(summary_);
    return summary_;
}

}  // namespace

RunSummary run_training(const TrainOptions& opts, Comm& comm, TrainingHooks* hooks_in) {
    RunSetup setup = plan_run(opts, comm);
    if (setup.o.logdir.empty()) setup.o.logdir = default_logdir(comm);
    TrainingHooks no_hooks;
    ControlChannel control(comm, setup.o.step_timeout, setup.first_worker());
    // The roles first: the data and the model are checked against the settings before the run
    // directory exists, so a mistake leaves no empty run behind.
    const std::unique_ptr<RankRole> role = make_rank_role(setup, comm, control);
    // Another run's checkpoints or a live run in the directory stop the job here, before it exists.
    const std::unique_ptr<RunDirectoryLock> lock = claim_run_directory(setup.o, comm);
    // Only rank 0 writes the run directory; an unwritable logdir stops the job here, before any step.
    TrainingLog log = comm.is_root() ? TrainingLog(setup.o.logdir, setup.o.console_tag) : TrainingLog();
    RunLoop loop(*role, comm, control, hooks_in ? *hooks_in : no_hooks, log);
    try {
        return loop.run();
    } catch (const std::exception& e) {
        log.record_failure(e.what());  // the log tells the whole story, also of a run that failed
        throw;
    }
}

}  // namespace unet
