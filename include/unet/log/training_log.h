// training.log in the run directory: the plain-text record of a run, one timestamped line per
// event (start, every N steps, every epoch, checkpoints, the end), flushed at once so that a crash
// loses nothing already logged. Lines also go to stderr. A line that cannot be written (a full
// disk) throws std::runtime_error "<dir>/training.log: write failed (<errno text>)": the run stops
// there as on a failed checkpoint, keeping its last checkpoint.
#pragma once

#include <cstdio>
#include <string>

namespace unet {

class TrainingLog {
   public:
    TrainingLog() = default;  // writes nothing at all (ranks other than 0)
    // Opens <dir>/training.log for appending (creating dir); throws naming the path if it cannot.
    // A `tag` prefixes the copies on stderr ("[trial 3] ..."), where several runs may interleave.
    explicit TrainingLog(const std::string& dir, std::string tag = "");
    ~TrainingLog();
    TrainingLog(TrainingLog&& o) noexcept : file_(o.file_), path_(std::move(o.path_)), tag_(std::move(o.tag_)) {
        o.file_ = nullptr;
    }
    TrainingLog(const TrainingLog&) = delete;
    TrainingLog& operator=(const TrainingLog&) = delete;

    void line(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
    // The error that ends the run, into the file only (the program prints it on stderr itself);
    // never throws (a failure to write it is dropped).
    void record_failure(const std::string& what);
    const std::string& path() const { return path_; }

   private:
    void write_file(const char* text);  // one time-stamped line
    std::FILE* file_ = nullptr;
    std::string path_;
    std::string tag_;
};

// Creates a directory and its parents; throws std::runtime_error naming it when that fails or it
// is not writable.
void make_writable_dir(const std::string& dir);

}  // namespace unet
