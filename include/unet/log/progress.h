// A one-line progress bar on stderr for long work (dataset conversion): redrawn in place on a
// terminal, printed as a plain line every 10% otherwise (logs, CI).
//   [##########----------]  12/40 cases  4.1s elapsed, ETA 9.6s
#pragma once

#include <chrono>
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

}  // namespace unet
