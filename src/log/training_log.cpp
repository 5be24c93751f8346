#include "unet/log/training_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace unet {

void make_writable_dir(const std::string& dir) {
    std::string partial;
    for (size_t i = 0; i <= dir.size(); ++i) {
        if (i == dir.size() || dir[i] == '/') {
            if (!partial.empty() && mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
                throw std::runtime_error(dir + ": cannot create directory (" + std::strerror(errno) + ")");
        }
        if (i < dir.size()) partial += dir[i];
    }
    if (access(dir.c_str(), W_OK) != 0)
        throw std::runtime_error(dir + ": directory is not writable (" + std::strerror(errno) + ")");
}

TrainingLog::TrainingLog(const std::string& dir, std::string tag)
    : path_(dir + "/training.log"), tag_(tag.empty() ? "" : "[" + tag + "] ") {
    make_writable_dir(dir);
    file_ = std::fopen(path_.c_str(), "a");
    if (!file_) throw std::runtime_error(path_ + ": cannot open for writing (" + std::strerror(errno) + ")");
}

TrainingLog::~TrainingLog() {
    if (file_) std::fclose(file_);
}

void TrainingLog::line(const char* fmt, ...) {
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!file_) return;
    // On a terminal the line replaces the training progress bar, which is redrawn after it.
    static const bool tty = isatty(STDERR_FILENO) != 0;
    std::fprintf(stderr, "%s%s%s\n", tty ? "\r\033[K" : "", tag_.c_str(), text);
    write_file(text);
}

void TrainingLog::record_failure(const std::string& what) {
    // Best effort: the run is failing already (perhaps on this very file), and its error is the
    // line the user sees.
    if (!file_) return;
    try {
        write_file(("failed: " + what).c_str());
    } catch (const std::exception&) {
    }
}

void TrainingLog::write_file(const char* text) {
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    // A full disk (or EIO, a quota) stops the run as a failed checkpoint does: a run that can no
    // longer record what it does is not worth its cores, and its last checkpoint stays. The line
    // may be partly in the file; the next writer appends after it.
    errno = 0;
    if (std::fprintf(file_, "%s %s\n", stamp, text) < 0 || std::fflush(file_) != 0) {
        const int error = errno ? errno : EIO;
        std::clearerr(file_);
        throw std::runtime_error(path_ + ": write failed (" + std::strerror(error) + ")");
    }
}

}  // namespace unet
