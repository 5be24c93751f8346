// TensorBoard logs of a training run, as TrainingHooks. In the run directory (the resolved
// options' logdir, received in on_start) it writes three event files:
//   <logdir>/train/        train/loss, train/dice (every --print_every steps), train/epoch_loss,
//                          train/epoch_dice, learning_rate, perf/samples_per_sec, perf/step_time,
//                          perf/comm_fraction, perf/data_wait_fraction; histograms weights/<name>
//                          and gradients/<name> of every parameter tensor each epoch; text
//                          config/resolved (TrainOptions::describe()) and config/command_line
//   <logdir>/validation/   val/loss, val/dice, val/sensitivity, val/specificity each epoch,
//                          val/best_dice at the end; images/input, images/ground_truth (once) and
//                          images/prediction, images/overlay every --image_every steps and each
//                          epoch end, of the trainer's fixed validation sample (sample_pictures.h)
//   <logdir>/              the HParams session: hyperparameters at the start, status at the end
// so `tensorboard --logdir runs/` shows every run, and its HParams tab one row per run with the
// last values of the train/ and validation/ scalars as metrics.
//
// Only the writer rank writes: pass `writer` = (rank 0 of the run's communicator); on every other
// rank each hook does nothing. For tuning, construct one per trial (its logdir comes with that
// trial's resolved options). Opening the files in on_start throws std::runtime_error naming the
// directory when it cannot be written (before the first step); a later write error (a full disk)
// throws from the hook that meets it, naming the file, and stops the run (EventWriter).
#pragma once

#include <memory>
#include <string>

#include "unet/log/event_writer.h"
#include "unet/log/sample_pictures.h"
#include "unet/train/training_hooks.h"

namespace unet {

class TensorBoardHooks : public TrainingHooks {
   public:
    explicit TensorBoardHooks(bool writer, double flush_interval_s = EventWriter::kDefaultFlushSeconds);
    ~TensorBoardHooks() override;

    void on_start(const TrainOptions& resolved, const Batch& sample) override;
    void on_step(const StepReport& report) override;
    void on_model(int64_t step, const float* sample_prediction) override;
    bool on_epoch(const EpochReport& report, const ParamStore& model) override;
    void on_end(const RunSummary& summary) override;
    // For the caller when run_training threw (the trainer calls no hook then): marks the HParams
    // session failed, records why, and flushes; never throws.
    void on_failure(const std::string& why);

    // The run directory in use (empty before on_start or on a non-writer rank).
    const std::string& logdir() const { return logdir_; }

   private:
    void flush_all();

    bool writer_;
    double flush_interval_s_;
    std::string logdir_;
    std::unique_ptr<EventWriter> session_, train_, validation_;
    std::unique_ptr<SamplePictures> pictures_;
    Batch sample_;
    Regions regions_;  // the model's output regions (--labels), for the per-region scalars
    int64_t last_step_ = 0, last_picture_step_ = -1;
    bool ended_ = false;
};

}  // namespace unet
