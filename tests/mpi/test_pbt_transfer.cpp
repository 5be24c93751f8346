// PBT's direct exploit (pbt_transfer.h) between two ranks of a real MPI job (run under mpirun by
// tests/e2e/mpi_unit_tests.sh, with 2, 3 and 4 ranks): the first rank sends a checkpoint it wrote
// (HDF5, as the trainer writes one) to the last rank, which writes it into a directory of its own;
// the received files must equal the sent ones byte for byte (checksums compared across the ranks,
// and the checkpoint's arrays and integers read back). Also: a donor without checkpoint_best.h5
// leaves the recipient without one, and a donor without any checkpoint fails both sides with a
// line naming the file instead of leaving the recipient waiting.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "unet/io/checkpoint.h"
#include "unet/parallel/comm.h"
#include "unet/tune/pbt_transfer.h"

using namespace unet;
namespace fs = std::filesystem;

namespace {

constexpr int kTag = 913;

// Every rank's own scratch directory (the ranks may share /tmp, but not these directories).
std::string rank_dir(const std::string& name) {
    const std::string d = ::testing::TempDir() + "pbt_transfer_" + std::to_string(getpid()) + "_" + name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

Checkpoint donor_state(int salt) {
    Checkpoint c;
    c.arrays["weights/conv1"] = std::vector<float>(70000);
    for (size_t i = 0; i < c.arrays["weights/conv1"].size(); ++i) c.arrays["weights/conv1"][i] = float(i % 101) * 0.01f + float(salt);
    c.arrays["optimizer/m/conv1"] = {0.5f, -0.25f, float(salt)};
    c.integers["step"] = 1234 + salt;
    c.integers["epoch"] = 4;
    return c;
}

// Each test's end on every rank, also when an assertion or an exception ends it early (a rank that
// left without it would leave the others waiting): its directory removed, then a barrier.
struct EndTogether {
    std::string dir;
    ~EndTogether() {
        fs::remove_all(dir);
        Comm::world().barrier();
    }
};

// The checksum the sender computed, told to the receiver, which compares it with its own.
uint64_t exchange_sum(Comm& w, int from, int to, uint64_t mine) {
    if (w.rank() == from) w.send_text(to, kTag + 1, std::to_string(mine));
    return w.rank() == to ? std::stoull(w.receive_text(from, kTag + 1)) : 0;
}

TEST(PbtTransfer, ReceivedCheckpointEqualsTheDonorsByChecksum) {
    Comm& w = Comm::world();
    ASSERT_GE(w.size(), 2);
    const int from = 0, to = w.size() - 1;
    const std::string dir = rank_dir("full");
    EndTogether end{dir};
    if (w.rank() == from) {
        write_checkpoint(dir + "/checkpoint_latest.h5", donor_state(1));
        write_checkpoint(dir + "/checkpoint_best.h5", donor_state(2));
        const uint64_t sent = pbt_send_checkpoint(w, to, kTag, dir);
        EXPECT_EQ(sent, pbt_file_checksum(dir + "/checkpoint_latest.h5"));
        exchange_sum(w, from, to, sent);
        exchange_sum(w, from, to, pbt_file_checksum(dir + "/checkpoint_best.h5"));
    } else if (w.rank() == to) {
        // The recipient had a checkpoint of its own: both files are replaced.
        write_checkpoint(dir + "/checkpoint_latest.h5", donor_state(7));
        write_checkpoint(dir + "/checkpoint_best.h5", donor_state(8));
        const PbtReceived got = pbt_receive_checkpoint(w, from, kTag, dir);
        EXPECT_EQ(got.checksum, pbt_file_checksum(dir + "/checkpoint_latest.h5"));
        EXPECT_EQ(got.bytes, fs::file_size(dir + "/checkpoint_latest.h5") + fs::file_size(dir + "/checkpoint_best.h5"));
        EXPECT_EQ(exchange_sum(w, from, to, 0), got.checksum);
        EXPECT_EQ(exchange_sum(w, from, to, 0), pbt_file_checksum(dir + "/checkpoint_best.h5"));
        const Checkpoint latest = read_checkpoint(dir + "/checkpoint_latest.h5"), want = donor_state(1);
        EXPECT_EQ(latest.arrays, want.arrays);
        EXPECT_EQ(latest.integers, want.integers);
        EXPECT_EQ(read_checkpoint(dir + "/checkpoint_best.h5").integers.at("step"), 1234 + 2);
        // Written atomically: no temporary left behind.
        for (const auto& e : fs::directory_iterator(dir))
            EXPECT_EQ(e.path().extension(), ".h5") << e.path();
    }
}

TEST(PbtTransfer, ADonorWithoutABestCheckpointLeavesTheRecipientWithoutOne) {
    Comm& w = Comm::world();
    const int from = w.size() - 1, to = 0;  // the other way round
    const std::string dir = rank_dir("nobest");
    EndTogether end{dir};
    if (w.rank() == from) {
        write_checkpoint(dir + "/checkpoint_latest.h5", donor_state(3));
        exchange_sum(w, from, to, pbt_send_checkpoint(w, to, kTag, dir));
    } else if (w.rank() == to) {
        write_checkpoint(dir + "/checkpoint_best.h5", donor_state(9));
        const PbtReceived got = pbt_receive_checkpoint(w, from, kTag, dir);
        EXPECT_EQ(exchange_sum(w, from, to, 0), got.checksum);
        EXPECT_FALSE(fs::exists(dir + "/checkpoint_best.h5"));
        EXPECT_EQ(read_checkpoint(dir + "/checkpoint_latest.h5").integers.at("step"), 1234 + 3);
    }
}

TEST(PbtTransfer, ADonorWithoutACheckpointFailsBothSidesWithTheFilesName) {
    Comm& w = Comm::world();
    const int from = 0, to = w.size() - 1;
    const std::string dir = rank_dir("none");
    EndTogether end{dir};
    if (w.rank() == from) {
        try {
            pbt_send_checkpoint(w, to, kTag, dir);
            ADD_FAILURE() << "sent a checkpoint that does not exist";
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find(dir + "/checkpoint_latest.h5"), std::string::npos) << e.what();
        }
    } else if (w.rank() == to) {
        write_checkpoint(dir + "/checkpoint_latest.h5", donor_state(5));
        const uint64_t before = pbt_file_checksum(dir + "/checkpoint_latest.h5");
        try {
            pbt_receive_checkpoint(w, from, kTag, dir);
            ADD_FAILURE() << "received a checkpoint the donor did not have";
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find("checkpoint_latest.h5"), std::string::npos) << e.what();
        }
        EXPECT_EQ(pbt_file_checksum(dir + "/checkpoint_latest.h5"), before);  // its own is untouched
    }
}

}  // namespace
