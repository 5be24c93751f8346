// A one-line progress bar on stderr for long work (dataset conversion): redrawn in place on a
// terminal, printed as a plain line every 10% otherwise (logs, CI).
//   [##########----------]  12/40 cases  4.1s elapsed, ETA 9.6s
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace unet {

class ProgressBar {
   public:
    ProgressBar(std::string what, int64_t total);
    void update(int64_t done);
    void finish();  // ends the line

   private:
    std::string what_;
    int64_t total_;
    int last_decile_ = -1;
    bool tty_;
    std::chrono::steady_clock::time_point start_;
};

// The training run's bar on a terminal (rank 0 only): the epoch's steps, the last loss, and the
// ETA of the whole run from the pace so far. Redrawn at most 5 times a second; does nothing at all
// when stderr is not a terminal (training.log's lines are the record there).
//   epoch 3/10 [########----------------] 12/40 steps  loss 0.3412  2.1 steps/s  ETA 3m05s
class TrainingProgress {
   public:
    explicit TrainingProgress(bool enabled);
    // `run_done` of `run_total` steps are done in this process's run (a resumed run counts from
    // where it resumed).
    void update(int epoch, int epochs, int64_t epoch_step, int64_t epoch_steps, double loss, int64_t run_done,
                int64_t run_total);
    void clear();  // wipes the bar before other output

   private:
    bool on_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);  // "42s", "3m05s", "2h07m"

}  // namespace unet
