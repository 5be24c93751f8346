// .npy reader and writer: round trips, every supported dtype and header version, and a clear
// one-line error for everything unsupported or damaged.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "unet/data/npy.h"

using namespace unet;
namespace fs = std::filesystem;

namespace {

class Npy : public ::testing::Test {
   protected:
    void SetUp() override {
        char tmpl[] = "/tmp/unet_test_npy_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string file(const std::string& name) const { return dir_ + "/" + name; }

    // A .npy file exactly as numpy lays it out: magic, version, header length (2 bytes for 1.0,
    // 4 for 2.0/3.0), the dict padded with spaces to a 64-byte boundary and ended by '\n', data.
    std::string make(const std::string& name, int major, const std::string& dict, const void* data, size_t bytes,
                     bool pad = true) {
        const size_t len_bytes = major == 1 ? 2 : 4;
        std::string header = dict;
        if (pad) {
            const size_t prefix = 8 + len_bytes;
            while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
        }
        header += '\n';
        std::string out = std::string("\x93NUMPY", 6);
        out += char(major);
        out += char(0);
        for (size_t i = 0; i < len_bytes; ++i) out += char((header.size() >> (8 * i)) & 0xff);
        out += header;
        out.append(static_cast<const char*>(data), bytes);
        const std::string path = file(name);
        std::ofstream(path, std::ios::binary).write(out.data(), std::streamsize(out.size()));
        return path;
    }

    // The error read_npy throws, checked to be one line that names the file.
    std::string error_of(const std::string& path) {
        try {
            read_npy(path);
        } catch (const std::runtime_error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
            EXPECT_NE(msg.find(path), std::string::npos) << msg;
            return msg;
        }
        ADD_FAILURE() << "read_npy(" << path << ") did not throw";
        return "";
    }

    std::string dir_;
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_F(Npy, WriteThenReadRoundTrips2DAnd4D) {
    for (const std::vector<int64_t>& shape : {std::vector<int64_t>{3, 5}, std::vector<int64_t>{2, 7, 6, 4}}) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        std::vector<float> x(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(i) * 0.37f - 5.f;
        x[0] = -0.f;
        const std::string path = file("a.npy");
        write_npy(path, shape, x.data());
        const NpyArray a = read_npy(path);
        EXPECT_EQ(a.shape, shape);
        EXPECT_EQ(a.dtype, "<f4");
        ASSERT_EQ(a.data.size(), x.size());
        EXPECT_EQ(std::memcmp(a.data.data(), x.data(), x.size() * 4), 0);
        // numpy's layout: the data starts on a 64-byte boundary.
        EXPECT_EQ((fs::file_size(path) - x.size() * 4) % 64, 0u);
    }
}

TEST_F(Npy, WriterHeaderIsNumpysVersion1Text) {
    const float v[2] = {1.f, 2.f};
    const std::string path = file("h.npy");
    write_npy(path, {2}, v);
    std::ifstream in(path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GE(all.size(), 10u);
    EXPECT_EQ(all.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    const size_t hlen = size_t(uint8_t(all[8])) | size_t(uint8_t(all[9])) << 8;
    const std::string header = all.substr(10, hlen);
    EXPECT_EQ(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 0), 0u) << header;
    EXPECT_EQ(header.back(), '\n');
}

TEST_F(Npy, ScalarEmptyAndOneDimensionalShapes) {
    const float v = 4.5f;
    write_npy(file("s.npy"), {}, &v);
    NpyArray s = read_npy(file("s.npy"));
    EXPECT_TRUE(s.shape.empty());
    ASSERT_EQ(s.data.size(), 1u);
    EXPECT_EQ(s.data[0], 4.5f);

    write_npy(file("e.npy"), {0, 3}, nullptr);
    NpyArray e = read_npy(file("e.npy"));
    EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 3}));
    EXPECT_TRUE(e.data.empty());
}

TEST_F(Npy, Float64Version2HeaderIsConverted) {
    const double v[6] = {1.5, -2.25, 1e-3, 3.0e7, 0.0, -1.0 / 3.0};
    const std::string path =
        make("f8.npy", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", v, sizeof v);
    const NpyArray a = read_npy(path);
    EXPECT_EQ(a.dtype, "<f8");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
    ASSERT_EQ(a.data.size(), 6u);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(a.data[size_t(i)], float(v[i]));
}

TEST_F(Npy, Uint8InBothSpellingsAndVersion3) {
    const uint8_t v[4] = {0, 1, 200, 255};
    for (const char* descr : {"|u1", "<u1"}) {
        const std::string dict =
            std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (4, 1), }";
        const NpyArray a = read_npy(make("u1.npy", 1, dict, v, 4));
        EXPECT_EQ(a.dtype, descr);
        EXPECT_EQ(a.data, (std::vector<float>{0.f, 1.f, 200.f, 255.f}));
    }
    const NpyArray b =
        read_npy(make("v3.npy", 3, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", v, 4));
    EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(b.data[2], 200.f);
}

TEST_F(Npy, KeyOrderSpacingAndPython2Longs) {
    const float v[2] = {7.f, 8.f};
    const NpyArray a =
        read_npy(make("o.npy", 1, "{\"shape\":(1L,2L),\"fortran_order\":False,\"descr\":\"<f4\"}", v, 8, false));
    EXPECT_EQ(a.shape, (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(a.data, (std::vector<float>{7.f, 8.f}));
}

TEST_F(Npy, TrailingBytesAfterTheDataAreIgnoredLikeNumpy) {
    const float v[3] = {1.f, 2.f, 3.f};
    const NpyArray a = read_npy(make("t.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", v, 12));
    EXPECT_EQ(a.data, (std::vector<float>{1.f, 2.f}));
}

TEST_F(Npy, BigEndianIsRejected) {
    const float v[2] = {1.f, 2.f};
    const std::string msg =
        error_of(make("be.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", v, 8));
    EXPECT_TRUE(contains(msg, "big-endian")) << msg;
    EXPECT_TRUE(contains(msg, "'>f4'")) << msg;
}

TEST_F(Npy, FortranOrderIsRejected) {
    const float v[4] = {1.f, 2.f, 3.f, 4.f};
    const std::string msg =
        error_of(make("fo.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", v, 16));
    EXPECT_TRUE(contains(msg, "fortran_order True")) << msg;
}

TEST_F(Npy, OtherDtypesAreRejected) {
    const int32_t v[2] = {1, 2};
    for (const char* descr : {"<i4", "<f2", "<c8", "|b1", "<i8"}) {
        const std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (2,), }";
        const std::string msg = error_of(make("i4.npy", 1, dict, v, 8));
        EXPECT_TRUE(contains(msg, std::string("dtype '") + descr + "' not supported")) << msg;
    }
    const std::string msg = error_of(
        make("rec.npy", 1, "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }", v, 8));
    EXPECT_TRUE(contains(msg, "structured dtype")) << msg;
}

TEST_F(Npy, BadMagicAndVersionAreRejected) {
    const std::string path = file("bad.npy");
    std::ofstream(path) << "this is not a numpy file at all";
    EXPECT_TRUE(contains(error_of(path), "bad magic"));
    std::ofstream(file("empty.npy")).close();
    EXPECT_TRUE(contains(error_of(file("empty.npy")), "bad magic"));
    const float v = 1.f;
    const std::string msg = error_of(make("v4.npy", 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", &v, 4));
    EXPECT_TRUE(contains(msg, "version 4.0")) << msg;
}

TEST_F(Npy, TruncatedDataAndHeaderAreRejected) {
    std::vector<float> x(12, 1.f);
    const std::string path = file("full.npy");
    write_npy(path, {3, 4}, x.data());
    fs::resize_file(path, fs::file_size(path) - 4);
    const std::string msg = error_of(path);
    EXPECT_TRUE(contains(msg, "truncated data")) << msg;
    EXPECT_TRUE(contains(msg, "(3, 4)")) << msg;
    EXPECT_TRUE(contains(msg, "needs 48 bytes, file has 44")) << msg;

    fs::resize_file(path, 40);  // inside the header
    EXPECT_TRUE(contains(error_of(path), "truncated .npy header"));
}

TEST_F(Npy, MalformedHeadersAreRejected) {
    const float v = 1.f;
    for (const char* dict : {"{'descr': '<f4', 'shape': (1,), }", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
                             "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }",
                             "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "['<f4']"}) {
        const std::string msg = error_of(make("m.npy", 1, dict, &v, 4));
        EXPECT_TRUE(contains(msg, "malformed .npy header")) << dict << " -> " << msg;
    }
}

TEST_F(Npy, MissingFileAndUnwritablePathAreClearErrors) {
    const std::string msg = error_of(file("nope.npy"));
    EXPECT_TRUE(contains(msg, "cannot open")) << msg;
    const float v = 1.f;
    try {
        write_npy(file("no/such/dir.npy"), {1}, &v);
        ADD_FAILURE() << "write_npy into a missing directory did not throw";
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(contains(e.what(), "cannot create")) << e.what();
    }
}
