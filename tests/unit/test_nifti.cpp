// NIfTI reading and writing: round trips for every NiftiType, .nii and .nii.gz, hand-built files
// in other datatypes and big-endian byte order, NIfTI-2, scl_slope / scl_inter, and every error
// (missing, truncated, not NIfTI, unsupported) as one clear std::runtime_error without niftilib
// noise on stderr.
#include <gtest/gtest.h>
#include <nifti1_io.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "unet/data/nifti.h"
#include "unet/data/volume.h"
#include "../support/test_files.h"

using unet::test_support::TempDir;

using namespace unet;
namespace fs = std::filesystem;

namespace {


Volume pattern(int64_t c, int64_t d, int64_t h, int64_t w, float scale, float offset, bool integer) {
    Volume v;
    v.resize(c, d, h, w);
    for (size_t i = 0; i < v.data.size(); ++i) {
        const float x = float((i * 7919) % 1000) / 1000.f;  // deterministic, covers [0, 1)
        v.data[i] = integer ? std::round(x * scale + offset) : x * scale + offset;
    }
    return v;
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes, bool gzip = false) {
    if (gzip) {
        gzFile f = gzopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
        ASSERT_EQ(gzclose(f), Z_OK);
        return;
    }
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
}

// Appends the bytes of `v` in the requested byte order.
template <typename T>
void put(std::string& s, size_t offset, T v, bool big_endian) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    if (big_endian) std::reverse(b, b + sizeof(T));
    if (s.size() < offset + sizeof(T)) s.resize(offset + sizeof(T), '\0');
    std::memcpy(&s[offset], b, sizeof(T));
}

// A single-file NIfTI-1 built byte by byte, the way other tools lay it out.
template <typename T>
std::string nifti1_bytes(const std::vector<int16_t>& dims, int16_t datatype, const std::vector<T>& values,
                         bool big_endian, float slope = 0.f, float inter = 0.f) {
    std::string s(352, '\0');
    put<int32_t>(s, 0, 348, big_endian);
    put<int16_t>(s, 40, int16_t(dims.size()), big_endian);
    for (size_t i = 0; i < 7; ++i) put<int16_t>(s, 42 + 2 * i, i < dims.size() ? dims[i] : int16_t(1), big_endian);
    put<int16_t>(s, 70, datatype, big_endian);
    put<int16_t>(s, 72, int16_t(8 * sizeof(T)), big_endian);
    for (int i = 0; i < 8; ++i) put<float>(s, 76 + 4 * i, 1.f, big_endian);
    put<float>(s, 108, 352.f, big_endian);
    put<float>(s, 112, slope, big_endian);
    put<float>(s, 116, inter, big_endian);
    put<int16_t>(s, 252, 1, big_endian);
    std::memcpy(&s[344], "n+1\0", 4);
    for (const T& v : values) put<T>(s, s.size(), v, big_endian);
    return s;
}

// NIfTI-2: 540-byte header, int64 dims, double scaling.
template <typename T>
std::string nifti2_bytes(const std::vector<int64_t>& dims, int16_t datatype, const std::vector<T>& values,
                         bool big_endian, double slope = 0, double inter = 0) {
    std::string s(544, '\0');
    put<int32_t>(s, 0, 540, big_endian);
    std::memcpy(&s[4], "n+2\0\r\n\032\n", 8);
    put<int16_t>(s, 12, datatype, big_endian);
    put<int16_t>(s, 14, int16_t(8 * sizeof(T)), big_endian);
    put<int64_t>(s, 16, int64_t(dims.size()), big_endian);
    for (size_t i = 0; i < 7; ++i) put<int64_t>(s, 24 + 8 * i, i < dims.size() ? dims[i] : 1, big_endian);
    for (int i = 0; i < 8; ++i) put<double>(s, 104 + 8 * i, 1.0, big_endian);
    put<int64_t>(s, 168, 544, big_endian);
    put<double>(s, 176, slope, big_endian);
    put<double>(s, 184, inter, big_endian);
    for (const T& v : values) put<T>(s, s.size(), v, big_endian);
    return s;
}

template <typename T>
std::vector<T> ramp(size_t n, double a, double b) {
    std::vector<T> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = T(a + b * double(i % 97));
    return v;
}

// Runs `fn`, expects a std::runtime_error whose message contains every string of `want` and
// nothing printed on stderr.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& want) {
    testing::internal::CaptureStderr();
    std::string msg;
    try {
        fn();
    } catch (const std::runtime_error& e) {
        msg = e.what();
    }
    const std::string err = testing::internal::GetCapturedStderr();
    ASSERT_FALSE(msg.empty()) << "no std::runtime_error thrown";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    for (const auto& w : want) EXPECT_NE(msg.find(w), std::string::npos) << "message '" << msg << "' lacks '" << w << "'";
    EXPECT_EQ(err, "") << "stderr noise: " << err;
}

struct NimDeleter {
    void operator()(nifti_image* p) const { nifti_image_free(p); }
};
std::unique_ptr<nifti_image, NimDeleter> header_of(const std::string& path) {
    return std::unique_ptr<nifti_image, NimDeleter>(nifti_image_read(path.c_str(), 0));
}

}  // namespace

TEST(Volume, ShapeString) {
    Volume v;
    v.resize(4, 155, 240, 240);
    EXPECT_EQ(v.shape_string(), "4x155x240x240");
    EXPECT_EQ(v.voxels(), 155 * 240 * 240);
}

// ---- round trips ----

struct RoundTripCase {
    NiftiType type;
    const char* ext;
    int64_t channels;
};

class NiftiRoundTrip : public testing::TestWithParam<RoundTripCase> {};

TEST_P(NiftiRoundTrip, ValuesShapeAndHeader) {
    const auto p = GetParam();
    TempDir dir;
    const std::string path = dir.file(std::string("v") + p.ext);
    Volume v;
    float tol = 0;
    switch (p.type) {
        case NiftiType::uint8: v = pattern(p.channels, 5, 6, 7, 255, 0, true); break;
        case NiftiType::int16: v = pattern(p.channels, 5, 6, 7, 60000, -30000, true); break;
        case NiftiType::float32: v = pattern(p.channels, 5, 6, 7, 2e5f, -1e5f, false); break;
    }
    write_nifti(path, v, p.type);
    const Volume r = read_nifti(path);
    EXPECT_EQ(r.shape_string(), v.shape_string());
    ASSERT_EQ(r.data.size(), v.data.size());
    for (size_t i = 0; i < v.data.size(); ++i) ASSERT_NEAR(r.data[i], v.data[i], tol) << "voxel " << i;
    EXPECT_FALSE(fs::exists(path + ".tmp"));

    // The header as niftilib sees it: datatype, dims (x fastest), 1 mm, qform code 1.
    auto nim = header_of(path);
    ASSERT_TRUE(nim);
    const int want_dt = p.type == NiftiType::uint8 ? DT_UINT8 : p.type == NiftiType::int16 ? DT_INT16 : DT_FLOAT32;
    EXPECT_EQ(nim->datatype, want_dt);
    EXPECT_EQ(nim->ndim, p.channels > 1 ? 4 : 3);
    EXPECT_EQ(nim->nx, 7);
    EXPECT_EQ(nim->ny, 6);
    EXPECT_EQ(nim->nz, 5);
    EXPECT_EQ(nim->nt, p.channels);
    EXPECT_FLOAT_EQ(nim->dx, 1.f);
    EXPECT_FLOAT_EQ(nim->dz, 1.f);
    EXPECT_EQ(nim->qform_code, 1);
    const bool gz = std::string(p.ext) == ".nii.gz";
    const std::string raw = read_bytes(path);
    EXPECT_EQ(gz, raw.size() > 2 && uint8_t(raw[0]) == 0x1f && uint8_t(raw[1]) == 0x8b);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, NiftiRoundTrip,
                         testing::Values(RoundTripCase{NiftiType::uint8, ".nii.gz", 1},
                                         RoundTripCase{NiftiType::uint8, ".nii", 3},
                                         RoundTripCase{NiftiType::int16, ".nii.gz", 4},
                                         RoundTripCase{NiftiType::int16, ".nii", 1},
                                         RoundTripCase{NiftiType::float32, ".nii.gz", 2},
                                         RoundTripCase{NiftiType::float32, ".nii", 1}));

TEST(Nifti, Int16WithFractionalValuesGetsASlopeAndKeepsZeroExact) {
    TempDir dir;
    const std::string path = dir.file("scaled.nii.gz");
    Volume v = pattern(2, 4, 5, 6, 1234.5f, 0.25f, false);
    for (size_t i = 0; i < v.data.size(); i += 5) v.data[i] = 0.f;  // background
    write_nifti(path, v, NiftiType::int16);
    auto nim = header_of(path);
    ASSERT_TRUE(nim);
    EXPECT_EQ(nim->datatype, DT_INT16);
    float maxabs = 0;
    for (float x : v.data) maxabs = std::max(maxabs, std::fabs(x));
    EXPECT_NEAR(nim->scl_slope, maxabs / 32767.f, 1e-6f);
    EXPECT_EQ(nim->scl_inter, 0.f);
    const Volume r = read_nifti(path);
    for (size_t i = 0; i < v.data.size(); ++i) {
        ASSERT_NEAR(r.data[i], v.data[i], 0.51f * nim->scl_slope + 1e-4f) << i;
        if (v.data[i] == 0.f) {
            ASSERT_EQ(r.data[i], 0.f) << i;
        }
    }
}

TEST(Nifti, Int16IntegerDataIsStoredUnscaled) {
    TempDir dir;
    const std::string path = dir.file("ints.nii");
    const Volume v = pattern(1, 3, 3, 3, 200, -100, true);
    write_nifti(path, v, NiftiType::int16);
    auto nim = header_of(path);
    ASSERT_TRUE(nim);
    EXPECT_EQ(nim->scl_slope, 0.f);
    EXPECT_EQ(read_nifti(path).data, v.data);
}

TEST(Nifti, WriteRoundsIntegerTypes) {
    TempDir dir;
    Volume v;
    v.resize(1, 1, 1, 4);
    v.data = {0.4f, 1.6f, 2.5f, 254.7f};
    write_nifti(dir.file("r.nii"), v, NiftiType::uint8);
    EXPECT_EQ(read_nifti(dir.file("r.nii")).data, (std::vector<float>{0, 2, 2, 255}));
}

// ---- files written by other tools (built byte by byte) ----

TEST(Nifti, BigEndianInt16WithSlopeAndInter) {
    TempDir dir;
    const auto vals = ramp<int16_t>(4 * 3 * 2 * 2, -50, 3);
    for (bool gz : {false, true}) {
        const std::string path = dir.file(gz ? "be.nii.gz" : "be.nii");
        write_bytes(path, nifti1_bytes<int16_t>({4, 3, 2, 2}, DT_INT16, vals, true, 2.f, 10.f), gz);
        const Volume r = read_nifti(path);
        EXPECT_EQ(r.shape_string(), "2x2x3x4");
        for (size_t i = 0; i < vals.size(); ++i) ASSERT_FLOAT_EQ(r.data[i], 2.f * vals[i] + 10.f) << i;
    }
}

TEST(Nifti, BigEndianFloat32AndLittleEndianFloat64) {
    TempDir dir;
    const auto f32 = ramp<float>(5 * 4 * 3, -1.5, 0.25);
    write_bytes(dir.file("bef.nii"), nifti1_bytes<float>({5, 4, 3}, DT_FLOAT32, f32, true));
    const Volume a = read_nifti(dir.file("bef.nii"));
    EXPECT_EQ(a.shape_string(), "1x3x4x5");
    for (size_t i = 0; i < f32.size(); ++i) ASSERT_EQ(a.data[i], f32[i]);

    const auto f64 = ramp<double>(5 * 4 * 3, 1e3, -0.125);
    write_bytes(dir.file("f64.nii.gz"), nifti1_bytes<double>({5, 4, 3}, DT_FLOAT64, f64, false), true);
    const Volume b = read_nifti(dir.file("f64.nii.gz"));
    for (size_t i = 0; i < f64.size(); ++i) ASSERT_EQ(b.data[i], float(f64[i]));
}

TEST(Nifti, OtherIntegerTypes) {
    TempDir dir;
    const auto i8 = ramp<int8_t>(24, -40, 1);
    write_bytes(dir.file("i8.nii"), nifti1_bytes<int8_t>({4, 3, 2}, DT_INT8, i8, false));
    const auto u16 = ramp<uint16_t>(24, 60000, -7);
    write_bytes(dir.file("u16.nii"), nifti1_bytes<uint16_t>({4, 3, 2}, DT_UINT16, u16, true));
    const auto i32 = ramp<int32_t>(24, -100000, 1234);
    write_bytes(dir.file("i32.nii"), nifti1_bytes<int32_t>({4, 3, 2}, DT_INT32, i32, true, 0.5f, -1.f));
    const auto u8 = ramp<uint8_t>(24, 0, 2);
    write_bytes(dir.file("u8.nii"), nifti1_bytes<uint8_t>({4, 3, 2}, DT_UINT8, u8, false, 1.f, 0.f));
    const Volume a = read_nifti(dir.file("i8.nii")), b = read_nifti(dir.file("u16.nii")),
                 c = read_nifti(dir.file("i32.nii")), d = read_nifti(dir.file("u8.nii"));
    for (size_t i = 0; i < 24; ++i) {
        ASSERT_EQ(a.data[i], float(i8[i]));
        ASSERT_EQ(b.data[i], float(u16[i]));
        ASSERT_EQ(c.data[i], float(0.5 * i32[i] - 1.0));
        ASSERT_EQ(d.data[i], float(u8[i]));
    }
}

TEST(Nifti, ZeroOrNanSlopeMeansNoScaling) {
    TempDir dir;
    const auto vals = ramp<int16_t>(8, 1, 1);
    write_bytes(dir.file("s0.nii"), nifti1_bytes<int16_t>({2, 2, 2}, DT_INT16, vals, false, 0.f, 5.f));
    write_bytes(dir.file("snan.nii"), nifti1_bytes<int16_t>({2, 2, 2}, DT_INT16, vals, false, NAN, NAN));
    for (const char* f : {"s0.nii", "snan.nii"}) {
        const Volume r = read_nifti(dir.file(f));
        for (size_t i = 0; i < vals.size(); ++i) ASSERT_EQ(r.data[i], float(vals[i])) << f;
    }
}

TEST(Nifti, TwoDimensionalImageHasDepthOne) {
    TempDir dir;
    const auto vals = ramp<float>(6 * 5, 0, 1);
    write_bytes(dir.file("2d.nii"), nifti1_bytes<float>({6, 5}, DT_FLOAT32, vals, false));
    EXPECT_EQ(read_nifti(dir.file("2d.nii")).shape_string(), "1x1x5x6");
}

TEST(Nifti, FourDimensionalChannelsComeFirst) {
    TempDir dir;
    // x fastest, channel (4th axis) slowest: voxel (x, y, z, t) is at x + 3 (y + 2 (z + 2 t)).
    std::vector<float> vals(3 * 2 * 2 * 4);
    for (int t = 0; t < 4; ++t)
        for (int z = 0; z < 2; ++z)
            for (int y = 0; y < 2; ++y)
                for (int x = 0; x < 3; ++x) vals[x + 3 * (y + 2 * (z + 2 * t))] = 1000.f * t + 100.f * z + 10.f * y + x;
    write_bytes(dir.file("4d.nii.gz"), nifti1_bytes<float>({3, 2, 2, 4}, DT_FLOAT32, vals, true), true);
    const Volume r = read_nifti(dir.file("4d.nii.gz"));
    ASSERT_EQ(r.shape_string(), "4x2x2x3");
    EXPECT_EQ(r.channel(2)[(1 * 2 + 1) * 3 + 2], 2112.f);  // c=2, d=1, h=1, w=2
}

TEST(Nifti, Nifti2BothByteOrders) {
    TempDir dir;
    const auto vals = ramp<int16_t>(4 * 3 * 2, -7, 5);
    for (bool be : {false, true}) {
        const std::string path = dir.file(be ? "n2be.nii.gz" : "n2le.nii");
        write_bytes(path, nifti2_bytes<int16_t>({4, 3, 2}, DT_INT16, vals, be, 0.5, 3.0), be);
        const Volume r = read_nifti(path);
        EXPECT_EQ(r.shape_string(), "1x2x3x4");
        for (size_t i = 0; i < vals.size(); ++i) ASSERT_FLOAT_EQ(r.data[i], 0.5f * vals[i] + 3.f);
    }
}

// ---- errors ----

TEST(NiftiErrors, MissingFile) {
    TempDir dir;
    const std::string path = dir.file("nope.nii.gz");
    expect_error([&] { read_nifti(path); }, {path, "not found"});
}

TEST(NiftiErrors, TextFileRenamedNii) {
    TempDir dir;
    const std::string path = dir.file("notes.nii");
    std::string text;
    for (int i = 0; i < 40; ++i) text += "this is a text file, not a volume\n";
    write_bytes(path, text);
    expect_error([&] { read_nifti(path); }, {path, "not a NIfTI"});
    write_bytes(dir.file("short.nii"), "hello\n");
    expect_error([&] { read_nifti(dir.file("short.nii")); }, {"short.nii", "not NIfTI"});
    write_bytes(dir.file("text.nii.gz"), text, true);
    expect_error([&] { read_nifti(dir.file("text.nii.gz")); }, {"text.nii.gz", "not a NIfTI"});
}

TEST(NiftiErrors, EmptyFileAndDirectory) {
    TempDir dir;
    write_bytes(dir.file("empty.nii.gz"), "");
    expect_error([&] { read_nifti(dir.file("empty.nii.gz")); }, {"empty.nii.gz", "0 bytes"});
    fs::create_directories(dir.file("folder.nii"));
    expect_error([&] { read_nifti(dir.file("folder.nii")); }, {"folder.nii", "not a regular file"});
}

TEST(NiftiErrors, TruncatedNii) {
    TempDir dir;
    const Volume v = pattern(2, 6, 7, 8, 100, 0, false);
    write_nifti(dir.file("full.nii"), v, NiftiType::float32);
    const std::string bytes = read_bytes(dir.file("full.nii"));
    write_bytes(dir.file("cut.nii"), bytes.substr(0, bytes.size() - 100));
    expect_error([&] { read_nifti(dir.file("cut.nii")); }, {"cut.nii", "truncated"});
    write_bytes(dir.file("cuthdr.nii"), bytes.substr(0, 200));
    expect_error([&] { read_nifti(dir.file("cuthdr.nii")); }, {"cuthdr.nii", "200 bytes"});
}

TEST(NiftiErrors, TruncatedNiiGz) {
    TempDir dir;
    // Large enough (1 MB of int16) that zlib reads straight into the caller's buffer: gzread then
    // misses a cut trailer, which this test is here to catch.
    Volume v = pattern(4, 40, 48, 64, 1000, 0, false);
    for (size_t i = 0; i < v.data.size(); ++i) v.data[i] += float((i * 2654435761u) % 977);  // less compressible
    write_nifti(dir.file("full.nii.gz"), v, NiftiType::int16);
    const std::string bytes = read_bytes(dir.file("full.nii.gz"));
    ASSERT_GT(bytes.size(), 2000u);
    for (double frac : {0.5, 0.9}) {
        write_bytes(dir.file("cut.nii.gz"), bytes.substr(0, size_t(double(bytes.size()) * frac)));
        expect_error([&] { read_nifti(dir.file("cut.nii.gz")); }, {"cut.nii.gz", "truncated"});
    }
    // Cut inside the 8-byte gzip trailer (CRC32, length): every data byte decompresses, yet the
    // file is incomplete.
    for (size_t cut : {1, 4, 7}) {
        write_bytes(dir.file("trailer.nii.gz"), bytes.substr(0, bytes.size() - cut));
        expect_error([&] { read_nifti(dir.file("trailer.nii.gz")); }, {"trailer.nii.gz", "truncated"});
    }
    // A flipped byte in the CRC.
    std::string crc = bytes;
    crc[crc.size() - 6] = char(crc[crc.size() - 6] ^ 0x5a);
    write_bytes(dir.file("crc.nii.gz"), crc);
    expect_error([&] { read_nifti(dir.file("crc.nii.gz")); }, {"crc.nii.gz", "corrupt"});
    write_bytes(dir.file("cuthdr.nii.gz"), bytes.substr(0, 60));
    expect_error([&] { read_nifti(dir.file("cuthdr.nii.gz")); }, {"cuthdr.nii.gz", "truncated"});
    // Gzip data under a .nii name is named as such rather than misread.
    write_bytes(dir.file("gz_named.nii"), bytes);
    expect_error([&] { read_nifti(dir.file("gz_named.nii")); }, {"gz_named.nii", "gzip"});
}

TEST(NiftiErrors, UnsupportedDatatypeAndDimensionality) {
    TempDir dir;
    const std::vector<uint8_t> rgb(3 * 8, 7);
    std::string s = nifti1_bytes<uint8_t>({2, 2, 2}, DT_RGB24, rgb, false);
    write_bytes(dir.file("rgb.nii"), s);
    expect_error([&] { read_nifti(dir.file("rgb.nii")); }, {"rgb.nii", "unsupported datatype rgb24"});
    const auto vals = ramp<float>(2 * 2 * 2 * 1 * 3, 0, 1);
    write_bytes(dir.file("5d.nii"), nifti1_bytes<float>({2, 2, 2, 1, 3}, DT_FLOAT32, vals, false));
    expect_error([&] { read_nifti(dir.file("5d.nii")); }, {"5d.nii", "wrong dimensionality"});
    std::string analyze = nifti1_bytes<float>({2, 2, 2}, DT_FLOAT32, ramp<float>(8, 0, 1), false);
    std::memcpy(&analyze[344], "\0\0\0\0", 4);
    write_bytes(dir.file("analyze.nii"), analyze);
    expect_error([&] { read_nifti(dir.file("analyze.nii")); }, {"analyze.nii", "magic"});
    write_bytes(dir.file("vol.img"), analyze);
    expect_error([&] { read_nifti(dir.file("vol.img")); }, {"vol.img", ".nii"});
}

TEST(NiftiErrors, WriteErrors) {
    TempDir dir;
    Volume v = pattern(1, 2, 2, 2, 10, 0, false);
    expect_error([&] { write_nifti(dir.file("no/such/dir/x.nii.gz"), v, NiftiType::float32); }, {"x.nii.gz", "cannot open"});
    expect_error([&] { write_nifti(dir.file("x.txt"), v, NiftiType::float32); }, {"x.txt", ".nii"});
    Volume bad = v;
    bad.data[3] = NAN;
    expect_error([&] { write_nifti(dir.file("nan.nii"), bad, NiftiType::int16); }, {"nan.nii", "NaN"});
    Volume big = v;
    big.data[0] = 300;
    expect_error([&] { write_nifti(dir.file("big.nii"), big, NiftiType::uint8); }, {"big.nii", "uint8"});
    Volume wrong = v;
    wrong.data.pop_back();
    expect_error([&] { write_nifti(dir.file("wrong.nii"), wrong, NiftiType::float32); }, {"wrong.nii", "shape"});
    EXPECT_FALSE(fs::exists(dir.file("nan.nii")));
    EXPECT_FALSE(fs::exists(dir.file("nan.nii.tmp")));
    // NaN survives a float32 round trip, as in nibabel (niftilib's own data reader zeroes it).
    write_nifti(dir.file("nan32.nii"), bad, NiftiType::float32);
    EXPECT_TRUE(std::isnan(read_nifti(dir.file("nan32.nii")).data[3]));
}
