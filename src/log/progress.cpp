#include "unet/log/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace unet {

ProgressBar::ProgressBar(std::string what, int64_t total)
    : what_(std::move(what)), total_(total), tty_(isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int64_t done) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double frac = total_ > 0 ? double(done) / double(total_) : 1.0;
    const int decile = int(frac * 10);
    if (!tty_ && decile == last_decile_ && done != total_) return;
    last_decile_ = decile;
    const int width = 24, filled = int(frac * width);
    std::string bar(size_t(filled), '#');
    bar += std::string(size_t(width - filled), '-');
    const double eta = done > 0 ? elapsed * double(total_ - done) / double(done) : 0.0;
    std::fprintf(stderr, "%s[%s] %lld/%lld %s  %.1fs elapsed, ETA %.1fs%s", tty_ ? "\r" : "", bar.c_str(),
                 (long long)done, (long long)total_, what_.c_str(), elapsed, eta, tty_ ? "   " : "\n");
    std::fflush(stderr);
}

void ProgressBar::finish() {
    if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace unet
