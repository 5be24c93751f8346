// training.log: lines are appended time-stamped; a line that cannot be written (the disk full,
// here a file-size limit) throws naming the file and the errno text, so the run stops as on a
// failed checkpoint; record_failure, called while a run is failing already, never throws.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "unet/log/training_log.h"
#include "../support/test_files.h"

using unet::TrainingLog;
using unet::test_support::FileSizeLimit;
using unet::test_support::TempDir;

namespace {

std::string read_all(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

TEST(TrainingLog, AppendsTimeStampedLines) {
    TempDir dir;
    {
        TrainingLog log(dir.path() + "/run");
        log.line("step %d", 1);
    }
    {
        TrainingLog again(dir.path() + "/run");  // a resumed run appends
        again.line("step %d", 2);
    }
    const std::string text = read_all(dir.path() + "/run/training.log");
    EXPECT_NE(text.find(" step 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find(" step 2\n"), std::string::npos) << text;
    EXPECT_LT(text.find("step 1"), text.find("step 2"));
}

TEST(TrainingLog, AFullDiskThrowsNamingTheFileAndRecordFailureDoesNot) {
    TempDir dir;
    TrainingLog log(dir.path());
    log.line("first line");
    const auto size = std::filesystem::file_size(log.path());
    testing::internal::CaptureStderr();  // the lines' copies on stderr
    {
        FileSizeLimit limit(rlim_t(size + 40));
        ASSERT_TRUE(limit.ok());
        try {
            log.line("a line longer than the forty bytes the file may still grow by");
            FAIL() << "no exception";
        } catch (const std::runtime_error& e) {
            EXPECT_EQ(std::string(e.what()), log.path() + ": write failed (File too large)");
        }
        EXPECT_NO_THROW(log.record_failure("the disk is full"));
    }
    testing::internal::GetCapturedStderr();
    const std::string text = read_all(log.path());
    EXPECT_NE(text.find("first line"), std::string::npos);
}

TEST(TrainingLog, DevFullThrowsAtTheFirstLine) {
    TempDir dir;
    std::error_code ec;
    std::filesystem::create_symlink("/dev/full", dir.path() + "/training.log", ec);
    if (ec) GTEST_SKIP() << "cannot link /dev/full: " << ec.message();
    TrainingLog log(dir.path());
    testing::internal::CaptureStderr();
    EXPECT_THROW(log.line("step 1"), std::runtime_error);
    testing::internal::GetCapturedStderr();
}
