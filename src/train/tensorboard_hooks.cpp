#include "unet/train/tensorboard_hooks.h"

#include <sys/time.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "unet/log/event_writer.h"
#include "unet/log/histogram.h"
#include "unet/log/summaries.h"
#include "unet/train/flags.h"

namespace unet {

namespace {


// The HParams table's columns for one run: the registry's kHParam flags (flags.h).
std::vector<HParam> hparams_of(const TrainOptions& o) {
    std::vector<HParam> out;
    for (const FlagValue& v : flag_values(o, kHParam)) {
        if (v.kind == FlagKind::flag) out.push_back({v.hparam, v.value == "1"});
        else if (v.kind == FlagKind::number) out.push_back({v.hparam, std::stod(v.value)});
        else out.push_back({v.hparam, v.value});
    }
    return out;
}

// Markdown: a block indented by four spaces is shown verbatim.
std::string as_code_block(const std::string& text) {
    std::istringstream in(text);
    std::string line, out;
    while (std::getline(in, line)) out += "    " + line + "\n";
    return out;
}

tb::hparams::Status status_of(const std::string& status) {
    if (status == "completed" || status == "stopped early") return tb::hparams::STATUS_SUCCESS;
    if (status.rfind("failed", 0) == 0) return tb::hparams::STATUS_FAILURE;
    return tb::hparams::STATUS_UNKNOWN;  // interrupted: --resume may continue it
}

}  // namespace

TensorBoardHooks::TensorBoardHooks(bool writer, double flush_interval_s)
    : writer_(writer), flush_interval_s_(flush_interval_s) {}

TensorBoardHooks::~TensorBoardHooks() = default;  // the writers flush as they close

void TensorBoardHooks::flush_all() {
    for (EventWriter* w : {session_.get(), train_.get(), validation_.get()})
        if (w) w->flush();
}

void TensorBoardHooks::on_start(const TrainOptions& o, const Batch& sample) {
    if (!writer_) return;
    // All three files first: a directory that cannot be written stops the run before any step,
    // and the hooks stay inert (on_failure then has nothing to write to).
    auto session = EventWriter::create_in(o.logdir, flush_interval_s_);
    auto train = EventWriter::create_in(o.logdir + "/train", flush_interval_s_);
    auto validation = EventWriter::create_in(o.logdir + "/validation", flush_interval_s_);
    logdir_ = o.logdir;
    regions_ = o.regions;
    session_ = std::move(session);
    train_ = std::move(train);
    validation_ = std::move(validation);

    session_->write_value(0, hparams_session_start(hparams_of(o), unix_time_seconds()));
    train_->write_value(0, text_summary("config/resolved", as_code_block(o.describe())));
    train_->write_value(0, text_summary("config/command_line", as_code_block(o.command_line)));
    if (sample.n >= 1) {
        sample_ = sample;
        std::vector<std::string> names;
        for (const Region& r : o.regions) names.push_back(r.name);
        pictures_ = std::make_unique<SamplePictures>(sample_.images.data(), sample_.channels, sample_.masks.data(),
                                                     sample_.spatial, names);
        validation_->write_value(0, image_summary("images/input", pictures_->input()));
        validation_->write_value(0, image_summary("images/ground_truth", pictures_->truth()));
    }
    flush_all();
}

void TensorBoardHooks::on_step(const StepReport& r) {
    if (!writer_ || !train_) return;
    last_step_ = r.step;
    tb::Summary s;
    *s.add_value() = scalar_summary("train/loss", r.loss);
    *s.add_value() = scalar_summary("train/dice", r.dice);
    *s.add_value() = scalar_summary("learning_rate", r.learning_rate);
    *s.add_value() = scalar_summary("perf/samples_per_sec", r.samples_per_s);
    *s.add_value() = scalar_summary("perf/step_time", r.step_time_s);
    *s.add_value() = scalar_summary("perf/comm_fraction", r.comm_fraction);
    *s.add_value() = scalar_summary("perf/data_wait_fraction", r.data_wait_fraction);
    train_->write_summary(r.step, s);
}

void TensorBoardHooks::on_model(int64_t step, const float* probabilities) {
    // The trainer also calls this at each epoch end, which may be a step that already has pictures.
    if (!writer_ || !validation_ || !pictures_ || !probabilities || step == last_picture_step_) return;
    last_picture_step_ = step;
    tb::Summary s;
    *s.add_value() = image_summary("images/prediction", pictures_->prediction(probabilities));
    *s.add_value() = image_summary("images/overlay", pictures_->overlay(probabilities));
    validation_->write_summary(step, s);
}

bool TensorBoardHooks::on_epoch(const EpochReport& r, const ParamStore& store) {
    if (!writer_ || !train_) return true;
    last_step_ = r.step;
    // With whole-volume validation the patches' numbers are named as such, and val/ is the volumes'.
    const std::string patch = r.whole_volume_run ? "val_patch/" : "val/";
    tb::Summary val;
    *val.add_value() = scalar_summary(patch + "loss", r.validation.mean_loss());
    *val.add_value() = scalar_summary(patch + "dice", r.validation.mean_dice());
    *val.add_value() = scalar_summary(patch + "sensitivity", r.validation.mean_sensitivity());
    *val.add_value() = scalar_summary(patch + "specificity", r.validation.mean_specificity());
    // Region models: each region's Dice (and whole-volume HD95) beside the means, "val/dice_tc".
    const bool per_region = regions_.size() > 1;
    auto region_tag = [&](const std::string& tag, size_t k) { return tag + "_" + regions_text({regions_[k]}); };
    for (size_t k = 0; per_region && k < regions_.size(); ++k)
        *val.add_value() = scalar_summary(region_tag(patch + "dice", k), r.validation.mean_dice(int(k)));
    if (r.whole_scored) {
        *val.add_value() = scalar_summary("val/dice", r.whole.mean_dice());
        *val.add_value() = scalar_summary("val/hd95", r.whole.mean_hd95());
        *val.add_value() = scalar_summary("val/sensitivity", r.whole.mean_sensitivity());
        *val.add_value() = scalar_summary("val/specificity", r.whole.mean_specificity());
        for (size_t k = 0; per_region && k < regions_.size(); ++k) {
            *val.add_value() = scalar_summary(region_tag("val/dice", k), r.whole.mean(VolumeScoreSums::kDice, int(k)));
            *val.add_value() = scalar_summary(region_tag("val/hd95", k), r.whole.mean(VolumeScoreSums::kHd95, int(k)));
        }
    }
    validation_->write_summary(r.step, val);

    tb::Summary train;
    *train.add_value() = scalar_summary("train/epoch_loss", r.train_loss);
    *train.add_value() = scalar_summary("train/epoch_dice", r.train_dice);
    for (size_t k = 0; per_region && k < regions_.size(); ++k)
        *train.add_value() = scalar_summary(region_tag("train/epoch_dice", k), r.train_region_dice[k]);
    train_->write_summary(r.step, train);
    // One event per tensor keeps every record small.
    for (const ParamView& v : store.views()) {
        Histogram weights, gradients;
        weights.add(store.params() + v.offset, v.count);
        gradients.add(store.grads() + v.offset, v.count);
        train_->write_value(r.step, histogram_summary("weights/" + v.name, weights));
        train_->write_value(r.step, histogram_summary("gradients/" + v.name, gradients));
    }
    flush_all();
    return true;
}

void TensorBoardHooks::on_end(const RunSummary& s) {
    if (!writer_ || !session_ || ended_) return;
    ended_ = true;
    validation_->write_value(s.steps, scalar_summary("val/best_dice", s.best_val_dice));
    std::ostringstream text;
    text << s.status << ": " << s.epochs << " epochs, " << s.steps << " steps in " << s.seconds
         << " s; validation Dice " << s.final_val_dice << " (best " << s.best_val_dice << ")";
    train_->write_value(s.steps, text_summary("run/summary", text.str()));
    session_->write_value(s.steps, hparams_session_end(status_of(s.status), unix_time_seconds()));
    flush_all();
}

void TensorBoardHooks::on_failure(const std::string& why) {
    if (!writer_ || !session_ || ended_) return;
    ended_ = true;
    // Best effort, each file on its own, from the caller's catch: the failure may be one of these
    // files' disk being full, and the session's status is still worth recording in another.
    auto best_effort = [](EventWriter& w, int64_t step, const tb::Summary::Value& v) {
        try {
            w.write_value(step, v);
            w.flush();
        } catch (const std::exception&) {
        }
    };
    best_effort(*train_, last_step_, text_summary("run/summary", "failed: " + why));
    best_effort(*session_, last_step_, hparams_session_end(tb::hparams::STATUS_FAILURE, unix_time_seconds()));
    try {
        validation_->flush();
    } catch (const std::exception&) {
    }
}

}  // namespace unet
