// A TensorBoard event file: framed records (records.h) of serialized tb::Event messages, the first
// one file_version "brain.Event:2". Events are queued in memory and written, as whole records
// only, by flush(): on a timer (a background thread, every `flush_interval_s`), when asked and
// when the writer is destroyed.
//
// A reader never meets a torn record we left: each flush writes whole records, and when a write
// fails part-way (a full disk, a file-size limit) the file is cut back to its last whole record
// and the records of that flush are dropped. A write error then stops the run as a failed
// checkpoint does: flush() throws std::runtime_error "<file>: write failed (<errno text>)", and
// after a failed background flush so do the next write() and flush(), for good (the file misses
// records from then on). The destructor never throws: an error it meets first is one warning line.
//
// Thread-safe: write() and flush() may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "proto/event.pb.h"

namespace unet {

class EventWriter {
   public:
    static constexpr double kDefaultFlushSeconds = 5;

    // Creates `dir` and its parents and a new file in it named
    // events.out.tfevents.<seconds>.<host>.<pid> (with ".1", ".2", ... appended if that exists).
    // Throws std::runtime_error naming the directory or file when it cannot.
    static std::unique_ptr<EventWriter> create_in(const std::string& dir,
                                                  double flush_interval_s = kDefaultFlushSeconds);
    // Writes to exactly `path` (created or truncated; a device such as /dev/full works too).
    explicit EventWriter(const std::string& path, double flush_interval_s = kDefaultFlushSeconds);
    ~EventWriter();
    EventWriter(const EventWriter&) = delete;
    EventWriter& operator=(const EventWriter&) = delete;

    // Queues one event; wall_time 0 is replaced by the current time. Throws when a background
    // flush failed (see above).
    void write(tb::Event event);
    // Queues an event holding these summary values at `step`.
    void write_summary(int64_t step, const tb::Summary& summary);
    void write_value(int64_t step, const tb::Summary::Value& value);
    // Writes every queued record now; throws when that or an earlier flush failed.
    void flush();

    const std::string& path() const { return path_; }
    int64_t records_written() const;  // whole records now in the file
    int64_t records_dropped() const;  // lost to write errors
    uint64_t bytes_written() const;

   private:
    void flush_loop(double interval_s);
    bool write_fully(const std::string& bytes, int& error);
    void write_queued();  // never throws: a failure is kept in error_
    [[noreturn]] void throw_error();

    std::string path_;
    int fd_ = -1;
    mutable std::mutex queue_mutex_, io_mutex_;
    std::string queued_;  // framed records not yet written
    int64_t queued_records_ = 0;
    uint64_t good_bytes_ = 0;  // file size up to the last whole record written
    int64_t written_ = 0, dropped_ = 0;
    std::atomic<int> error_{0};  // errno of the first failed write, for good
    bool reported_ = false;      // error_ was thrown or warned about
    std::mutex timer_mutex_;
    std::condition_variable timer_cv_;
    bool stopping_ = false;
    std::thread flusher_;
};

// The name TensorBoard expects: events.out.tfevents.<seconds>.<host>.<pid>
std::string event_file_name();

// Wall-clock seconds since the Unix epoch, with microseconds: the time stamp events carry.
double unix_time_seconds();

}  // namespace unet
