// Event files: our reader against framed records (intact, torn at every byte, corrupted), and the
// writer: file name, first record, timer and explicit flushes, and write errors (a file-size limit
// that cuts a record in the middle, /dev/full, a failed background flush) that throw naming the
// file and the errno text, for good, and never leave a torn or corrupt record behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "proto/event.pb.h"
#include "unet/log/event_writer.h"
#include "unet/log/records.h"
#include "unet/log/summaries.h"
#include "../support/test_files.h"

using unet::test_support::TempDir;
using unet::test_support::FileSizeLimit;

using namespace unet;
namespace fs = std::filesystem;

namespace {

tb::Event parse_event(const std::string& data) {
    tb::Event e;
    EXPECT_TRUE(e.ParseFromString(data));
    return e;
}



}  // namespace

TEST(Records, ReadsBackEveryRecord) {
    std::string file;
    for (int i = 0; i < 50; ++i) file += frame_record(std::string(size_t(i * 7), char('a' + i % 26)));
    const RecordScan scan = scan_records(file);
    ASSERT_TRUE(scan.clean());
    ASSERT_EQ(scan.records.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(scan.records[size_t(i)], std::string(size_t(i * 7), char('a' + i % 26)));
    EXPECT_EQ(scan.intact_bytes, file.size());
}

// A crash can stop a write at any byte: the reader returns every record before it and calls the
// rest a torn tail, never corruption.
TEST(Records, TornAtEveryByteKeepsTheWholeRecords) {
    const std::string a = frame_record("first"), b = frame_record("second record");
    const std::string file = a + b;
    for (size_t cut = 0; cut < file.size(); ++cut) {
        const RecordScan scan = scan_records(file.substr(0, cut));
        EXPECT_TRUE(scan.corruption.empty()) << cut;
        EXPECT_EQ(scan.torn_tail, cut != 0 && cut != a.size()) << cut;
        EXPECT_EQ(scan.records.size(), cut >= a.size() ? 1u : 0u) << cut;
    }
}

TEST(Records, DetectsFlippedBitsInLengthAndData) {
    const std::string good = frame_record("payload") + frame_record("more");
    for (size_t at : {size_t(0), size_t(9), size_t(13), size_t(19)}) {
        std::string bad = good;
        bad[at] = char(bad[at] ^ 0x10);
        const RecordScan scan = scan_records(bad);
        EXPECT_FALSE(scan.corruption.empty()) << at;
        EXPECT_TRUE(scan.records.empty()) << at;
    }
    std::string bad = good;
    bad[good.size() - 3] = char(bad[good.size() - 3] ^ 1);  // the second record's data CRC
    const RecordScan scan = scan_records(bad);
    EXPECT_EQ(scan.records.size(), 1u);
    EXPECT_NE(scan.corruption.find("data CRC"), std::string::npos) << scan.corruption;
}

TEST(EventWriter, NameFirstRecordAndSummaries) {
    TempDir dir;
    std::string path;
    {
        auto w = EventWriter::create_in(dir.path() + "/run/train", 0);
        path = w->path();
        w->write_value(3, scalar_summary("train/loss", 0.25));
        w->write_value(7, scalar_summary("train/loss", 0.125));
    }
    const std::string name = fs::path(path).filename();
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
    EXPECT_NE(name.find(std::string(".") + host + "." + std::to_string(getpid())), std::string::npos) << name;
    const RecordScan scan = read_records(path);
    ASSERT_TRUE(scan.clean());
    ASSERT_EQ(scan.records.size(), 3u);
    const tb::Event first = parse_event(scan.records[0]);
    EXPECT_EQ(first.file_version(), "brain.Event:2");
    EXPECT_GT(first.wall_time(), 1.6e9);
    const tb::Event second = parse_event(scan.records[1]), third = parse_event(scan.records[2]);
    EXPECT_EQ(second.step(), 3);
    EXPECT_EQ(second.summary().value(0).tag(), "train/loss");
    EXPECT_FLOAT_EQ(second.summary().value(0).simple_value(), 0.25f);
    EXPECT_EQ(third.step(), 7);
    EXPECT_LE(second.wall_time(), third.wall_time());
}

TEST(EventWriter, SecondWriterInTheSameSecondGetsItsOwnFile) {
    TempDir dir;
    auto a = EventWriter::create_in(dir.path(), 0);
    auto b = EventWriter::create_in(dir.path(), 0);
    EXPECT_NE(a->path(), b->path());
    EXPECT_NE(fs::path(b->path()).filename().string().find("tfevents"), std::string::npos);
}

TEST(EventWriter, QueuedUntilFlushedByCallOrTimer) {
    TempDir dir;
    auto manual = EventWriter::create_in(dir.path() + "/manual", 0);
    const uint64_t after_version = fs::file_size(manual->path());
    manual->write_value(1, scalar_summary("x", 1));
    EXPECT_EQ(fs::file_size(manual->path()), after_version);
    manual->flush();
    EXPECT_GT(fs::file_size(manual->path()), after_version);
    EXPECT_EQ(manual->records_written(), 2);

    auto timed = EventWriter::create_in(dir.path() + "/timed", 0.05);
    timed->write_value(1, scalar_summary("x", 1));
    for (int i = 0; i < 100 && timed->records_written() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(timed->records_written(), 2);
    EXPECT_EQ(read_records(timed->path()).records.size(), 2u);
}

TEST(EventWriter, UnwritableDirectoryThrowsNamingIt) {
    TempDir dir;
    const std::string file = dir.path() + "/plain_file";
    std::ofstream(file) << "x";
    try {
        EventWriter::create_in(file + "/train");
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    }
}

// The disk fills up in the middle of a record: the file is cut back to its last whole record,
// the flush throws naming the file and the errno text, and so does every later write and flush
// (the file misses records: the run must stop); the destructor then adds no warning.
TEST(EventWriter, FullDiskMidRecordLeavesOnlyWholeRecordsAndThrows) {
    TempDir dir;
    const std::string big(3000, 'p');
    std::string path;
    int64_t written = 0, dropped = 0;
    int failed_at = -1;
    std::string what;
    testing::internal::CaptureStderr();
    {
        auto w = EventWriter::create_in(dir.path(), 0);
        path = w->path();
        w->write_value(1, text_summary("a", big));
        w->flush();
        const uint64_t size = w->bytes_written();
        FileSizeLimit limit(rlim_t(size + 4000));  // room for one more record and part of the next
        ASSERT_TRUE(limit.ok());
        for (int step = 2; step < 8 && failed_at < 0; ++step) {
            w->write_value(step, text_summary("a", big));
            try {
                w->flush();
            } catch (const std::runtime_error& e) {
                failed_at = step;
                what = e.what();
            }
        }
        EXPECT_THROW(w->write_value(9, text_summary("a", "late")), std::runtime_error);
        EXPECT_THROW(w->flush(), std::runtime_error);
        written = w->records_written();
        dropped = w->records_dropped();
    }
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(failed_at, 3);
    EXPECT_EQ(what, path + ": write failed (File too large)");
    EXPECT_EQ(written, 3);  // version, step 1, step 2
    EXPECT_EQ(dropped, 1);
    EXPECT_EQ(err.find("warning:"), std::string::npos) << err;
    const RecordScan scan = read_records(path);
    EXPECT_TRUE(scan.clean()) << scan.corruption << (scan.torn_tail ? " torn tail" : "");
    ASSERT_EQ(scan.records.size(), 3u);
    EXPECT_EQ(parse_event(scan.records[2]).step(), 2);
}

TEST(EventWriter, DevFullThrowsAtOnceNamingTheFile) {
    if (access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
    try {
        EventWriter w("/dev/full", 0);
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()), "/dev/full: write failed (No space left on device)");
    }
}

// A timer flush cannot throw (it runs on the writer's thread): its failure comes out of the
// trainer's next write(). Records already queued are dropped, none is torn.
TEST(EventWriter, FailedBackgroundFlushThrowsAtTheNextWrite) {
    TempDir dir;
    std::string path;
    {
        auto w = EventWriter::create_in(dir.path(), 0.02);
        path = w->path();
        FileSizeLimit limit(rlim_t(w->bytes_written() + 100));
        ASSERT_TRUE(limit.ok());
        w->write_value(1, text_summary("a", std::string(3000, 'p')));
        for (int i = 0; i < 200 && w->records_dropped() == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        ASSERT_EQ(w->records_dropped(), 1);
        try {
            w->write_value(2, scalar_summary("x", 2));
            FAIL() << "no exception";
        } catch (const std::runtime_error& e) {
            EXPECT_EQ(std::string(e.what()), path + ": write failed (File too large)");
        }
    }
    const RecordScan scan = read_records(path);
    EXPECT_TRUE(scan.clean());
    EXPECT_EQ(scan.records.size(), 1u);  // the version record
}
