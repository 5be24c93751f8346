#include "unet/log/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace unet {

static std::string bar(double frac) {
    const int width = 24, filled = int(std::min(1.0, std::max(0.0, frac)) * width);
    return "[" + std::string(size_t(filled), '#') + std::string(size_t(width - filled), '-') + "]";
}

ProgressBar::ProgressBar(std::string what, int64_t total)
    : what_(std::move(what)), total_(total), tty_(isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int64_t done) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double frac = total_ > 0 ? double(done) / double(total_) : 1.0;
    const int decile = int(frac * 10);
    if (!tty_ && decile == last_decile_ && done != total_) return;
    last_decile_ = decile;
    const double eta = done > 0 ? elapsed * double(total_ - done) / double(done) : 0.0;
    std::fprintf(stderr, "%s%s %lld/%lld %s  %.1fs elapsed, ETA %.1fs%s", tty_ ? "\r" : "", bar(frac).c_str(),
                 (long long)done, (long long)total_, what_.c_str(), elapsed, eta, tty_ ? "   " : "\n");
    std::fflush(stderr);
}

void ProgressBar::finish() {
    if (tty_) std::fprintf(stderr, "\n");
}

std::string format_duration(double seconds) {
    const long long s = (long long)(seconds + 0.5);
    char text[32];
    if (s < 60) std::snprintf(text, sizeof text, "%llds", s);
    else if (s < 3600) std::snprintf(text, sizeof text, "%lldm%02llds", s / 60, s % 60);
    else std::snprintf(text, sizeof text, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    return text;
}

TrainingProgress::TrainingProgress(bool enabled)
    : on_(enabled && isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}

void TrainingProgress::update(int epoch, int epochs, int64_t epoch_step, int64_t epoch_steps, double loss,
                              int64_t run_done, int64_t run_total) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_draw_ < std::chrono::milliseconds(200) && epoch_step != epoch_steps) return;
    last_draw_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? double(run_done) / elapsed : 0;
    const std::string eta = rate > 0 ? format_duration(double(run_total - run_done) / rate) : "?";
    std::fprintf(stderr, "\r\033[Kepoch %d/%d %s %lld/%lld steps  loss %.4f  %.2f steps/s  ETA %s", epoch + 1, epochs,
                 bar(epoch_steps > 0 ? double(epoch_step) / double(epoch_steps) : 1.0).c_str(), (long long)epoch_step,
                 (long long)epoch_steps, loss, rate, eta.c_str());
    std::fflush(stderr);
    drawn_ = true;
}

void TrainingProgress::clear() {
    if (!drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
}

}  // namespace unet
