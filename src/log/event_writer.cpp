#include "unet/log/event_writer.h"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "unet/log/records.h"
#include "unet/log/training_log.h"

namespace unet {

namespace {


}  // namespace

double unix_time_seconds() {
    timeval tv{};
    gettimeofday(&tv, nullptr);
    return double(tv.tv_sec) + 1e-6 * double(tv.tv_usec);
}

std::string event_file_name() {
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    return "events.out.tfevents." + std::to_string(std::time(nullptr)) + "." + host + "." + std::to_string(getpid());
}

std::unique_ptr<EventWriter> EventWriter::create_in(const std::string& dir, double flush_interval_s) {
    make_writable_dir(dir);
    const std::string base = dir + "/" + event_file_name();
    std::string path = base;
    // Two writers of one process in one directory within a second (a tuning trial restarted in
    // the same run directory) must not share a file.
    for (int n = 1; access(path.c_str(), F_OK) == 0; ++n) path = base + "." + std::to_string(n);
    return std::make_unique<EventWriter>(path, flush_interval_s);
}

EventWriter::EventWriter(const std::string& path, double flush_interval_s) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error(path + ": cannot create the event file (" + std::strerror(errno) + ")");
    tb::Event version;
    version.set_file_version("brain.Event:2");
    try {
        write(std::move(version));
        flush();
    } catch (...) {  // no destructor runs for a constructor that throws
        ::close(fd_);
        throw;
    }
    if (flush_interval_s > 0) flusher_ = std::thread([this, flush_interval_s] { flush_loop(flush_interval_s); });
}

EventWriter::~EventWriter() {
    if (flusher_.joinable()) {
        {
            std::lock_guard<std::mutex> lock(timer_mutex_);
            stopping_ = true;
        }
        timer_cv_.notify_all();
        flusher_.join();
    }
    write_queued();
    std::lock_guard<std::mutex> io(io_mutex_);
    int error = ::close(fd_) == 0 ? 0 : errno;
    if (error_ != 0) error = error_;
    // The run is over (or failing for another reason): a destructor cannot stop it, it can only say.
    if (error != 0 && !reported_)
        std::fprintf(stderr, "warning: TensorBoard event file %s: write failed (%s); its newest records are lost\n",
                     path_.c_str(), std::strerror(error));
}

void EventWriter::flush_loop(double interval_s) {
    const auto interval = std::chrono::duration<double>(interval_s);
    std::unique_lock<std::mutex> lock(timer_mutex_);
    while (!timer_cv_.wait_for(lock, interval, [this] { return stopping_; })) {
        lock.unlock();
        write_queued();  // a failure surfaces at the trainer's next write() or flush()
        lock.lock();
    }
}

void EventWriter::write(tb::Event event) {
    if (error_ != 0) throw_error();
    if (event.wall_time() == 0) event.set_wall_time(unix_time_seconds());
    std::string data;
    if (!event.SerializeToString(&data)) throw std::logic_error("tb::Event does not serialize");
    const std::string record = frame_record(data);
    std::lock_guard<std::mutex> lock(queue_mutex_);
    queued_ += record;
    ++queued_records_;
}

void EventWriter::write_summary(int64_t step, const tb::Summary& summary) {
    tb::Event event;
    event.set_step(step);
    *event.mutable_summary() = summary;
    write(std::move(event));
}

void EventWriter::write_value(int64_t step, const tb::Summary::Value& value) {
    tb::Event event;
    event.set_step(step);
    *event.mutable_summary()->add_value() = value;
    write(std::move(event));
}

bool EventWriter::write_fully(const std::string& bytes, int& error) {
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error = n < 0 ? errno : ENOSPC;
            return false;
        }
        done += size_t(n);
    }
    return true;
}

void EventWriter::flush() {
    write_queued();
    if (error_ != 0) throw_error();
}

void EventWriter::throw_error() {
    {
        std::lock_guard<std::mutex> io(io_mutex_);
        reported_ = true;
    }
    throw std::runtime_error(path_ + ": write failed (" + std::strerror(error_) + ")");
}

void EventWriter::write_queued() {
    std::lock_guard<std::mutex> io(io_mutex_);
    std::string bytes;
    int64_t records = 0;
    {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        bytes.swap(queued_);
        records = queued_records_;
        queued_records_ = 0;
    }
    if (bytes.empty()) return;
    int error = 0;
    if (write_fully(bytes, error)) {
        good_bytes_ += bytes.size();
        written_ += records;
        return;
    }
    // Part of a record may have reached the file: cut it back to the last whole record, so a
    // reader sees exactly the records of earlier flushes. (A device such as /dev/full cannot be
    // truncated and holds nothing anyway.)
    if (ftruncate(fd_, off_t(good_bytes_)) == 0) lseek(fd_, off_t(good_bytes_), SEEK_SET);
    dropped_ += records;
    if (error_ == 0) error_ = error;
}

int64_t EventWriter::records_written() const {
    std::lock_guard<std::mutex> io(io_mutex_);
    return written_;
}

int64_t EventWriter::records_dropped() const {
    std::lock_guard<std::mutex> io(io_mutex_);
    return dropped_;
}

uint64_t EventWriter::bytes_written() const {
    std::lock_guard<std::mutex> io(io_mutex_);
    return good_bytes_;
}

}  // namespace unet
