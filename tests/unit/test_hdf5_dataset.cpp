// The prepared HDF5 dataset: writer/reader round trips in 2D and 3D, the temporary-file protocol,
// and one clear error for every kind of wrong file (version, dtype, layout, shape, not HDF5).
#include <gtest/gtest.h>
#include <hdf5.h>
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "unet/core/check.h"
#include "unet/data/hdf5_dataset.h"

using namespace unet;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

int64_t product(const std::vector<int64_t>& v) {
    int64_t p = 1;
    for (int64_t x : v) p *= x;
    return p;
}

// Deterministic sample contents: every value depends on the split, the index and the position.
struct Sample {
    std::vector<float> image;
    std::vector<uint8_t> mask;
    std::string case_id;
};

Sample make_sample(int split_no, int64_t index, int channels, const std::vector<int64_t>& spatial) {
    const int64_t v = product(spatial);
    Sample s;
    s.image.resize(size_t(channels * v));
    s.mask.resize(size_t(v));
    for (int64_t i = 0; i < int64_t(s.image.size()); ++i)
        s.image[size_t(i)] = float((i * 37 + index * 101 + split_no * 1009) % 2001 - 1000) / 64.f;
    for (int64_t i = 0; i < v; ++i) s.mask[size_t(i)] = uint8_t((i + index + split_no) % 3 == 0);
    s.case_id = "BRATS_" + std::to_string(split_no * 100 + index);
    return s;
}

const char* const kSplits[] = {"train", "val", "test"};

// Writes a dataset with the given sample counts per split (train, val, test), samples in reverse
// order so the writer cannot rely on sequential writes.
void write_dataset(const std::string& path, const DatasetAttributes& attrs, const std::vector<int64_t>& spatial,
                   const std::vector<int64_t>& counts) {
    DatasetWriter w(path, attrs, spatial);
    for (int s = 0; s < 3; ++s) w.add_split(kSplits[s], counts[size_t(s)]);
    for (int s = 0; s < 3; ++s)
        for (int64_t i = counts[size_t(s)] - 1; i >= 0; --i) {
            const Sample x = make_sample(s, i, attrs.channels, spatial);
            w.write_sample(kSplits[s], i, x.image.data(), x.mask.data(), x.case_id);
        }
    w.finish();
    EXPECT_EQ(w.bytes_written(), int64_t(fs::file_size(path)));
}

// Reads everything back and compares it with make_sample.
void expect_contents(const std::string& path, const DatasetAttributes& attrs, const std::vector<int64_t>& spatial,
                     const std::vector<int64_t>& counts) {
    DatasetReader r(path);
    EXPECT_EQ(r.path(), path);
    EXPECT_EQ(r.spatial(), spatial);
    EXPECT_EQ(r.channels(), attrs.channels);
    const DatasetAttributes& a = r.attributes();
    EXPECT_EQ(a.mode, attrs.mode);
    EXPECT_EQ(a.channels, attrs.channels);
    EXPECT_EQ(a.normalization, attrs.normalization);
    EXPECT_EQ(a.crop, attrs.crop);
    EXPECT_EQ(a.split_seed, attrs.split_seed);
    EXPECT_EQ(a.source, attrs.source);
    EXPECT_EQ(a.labels, attrs.labels);
    const int64_t v = product(spatial);
    std::vector<float> image(static_cast<size_t>(attrs.channels * v)), mask(static_cast<size_t>(v));
    for (int s = 0; s < 3; ++s) {
        EXPECT_EQ(r.has_split(kSplits[s]), counts[size_t(s)] > 0) << kSplits[s];
        EXPECT_EQ(r.count(kSplits[s]), counts[size_t(s)]) << kSplits[s];
        for (int64_t i = 0; i < counts[size_t(s)]; ++i) {
            const Sample x = make_sample(s, i, attrs.channels, spatial);
            r.read_sample(kSplits[s], i, image.data(), mask.data());
            ASSERT_EQ(std::memcmp(image.data(), x.image.data(), image.size() * 4), 0) << kSplits[s] << " " << i;
            for (int64_t k = 0; k < v; ++k) ASSERT_EQ(mask[size_t(k)], float(x.mask[size_t(k)])) << k;
            EXPECT_EQ(r.case_id(kSplits[s], i), x.case_id);
        }
    }
}

class Hdf5Dataset : public ::testing::Test {
   protected:
    void SetUp() override {
        char tmpl[] = "/tmp/unet_test_h5_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        attrs3d_.mode = "3d";
        attrs3d_.channels = 4;
        attrs3d_.crop = "depth 2..154";
        attrs3d_.split_seed = -1234567890123LL;
        attrs3d_.source = "synthetic MSD Task01_BrainTumour";
        attrs3d_.labels = R"({"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"})";
        attrs2d_ = attrs3d_;
        attrs2d_.mode = "2d";
        attrs2d_.channels = 3;
        attrs2d_.normalization = "zscore per channel (µ, σ over brain)";
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string file(const std::string& name) const { return dir_ + "/" + name; }

    // A valid small 3D file to damage.
    std::string good_3d(const std::string& name) {
        const std::string path = file(name);
        write_dataset(path, attrs3d_, spatial3d_, {2, 1, 0});
        return path;
    }

    // The reader's error, checked to be one line that names the file.
    std::string open_error(const std::string& path) {
        try {
            DatasetReader r(path);
        } catch (const std::runtime_error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
            EXPECT_NE(msg.find(path), std::string::npos) << msg;
            return msg;
        }
        ADD_FAILURE() << "DatasetReader(" << path << ") did not throw";
        return "";
    }

    std::string dir_;
    DatasetAttributes attrs3d_, attrs2d_;
    const std::vector<int64_t> spatial3d_{3, 5, 6};
    const std::vector<int64_t> spatial2d_{7, 9};
};

// Small C-API helpers to damage a finished file in place.
struct H5File {
    explicit H5File(const std::string& path) : id(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)) {
        EXPECT_GE(id, 0) << path;
    }
    ~H5File() { EXPECT_GE(H5Fclose(id), 0); }
    hid_t id;
};

void set_int_attr(hid_t loc, const char* name, int64_t value) {
    if (H5Aexists(loc, name) > 0) {
        EXPECT_GE(H5Adelete(loc, name), 0);
    }
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(loc, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(attr, 0);
    EXPECT_GE(H5Awrite(attr, H5T_NATIVE_INT64, &value), 0);
    H5Aclose(attr);
    H5Sclose(space);
}

// A fixed-length string, as other tools (and h5py with np.bytes_) write them.
void set_fixed_string_attr(hid_t loc, const char* name, const std::string& value) {
    if (H5Aexists(loc, name) > 0) {
        EXPECT_GE(H5Adelete(loc, name), 0);
    }
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, value.size());
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(attr, 0);
    EXPECT_GE(H5Awrite(attr, type, value.data()), 0);
    H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
}

// Replaces (or creates) the dataset at `path` with an empty one of this type and shape.
void replace_dataset(hid_t file, const std::string& path, hid_t type, const std::vector<hsize_t>& dims) {
    if (H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0) {
        EXPECT_GE(H5Ldelete(file, path.c_str(), H5P_DEFAULT), 0);
    }
    const hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
    const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    const hid_t ds = H5Dcreate2(file, path.c_str(), type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(ds, 0) << path;
    H5Dclose(ds);
    H5Pclose(lcpl);
    H5Sclose(space);
}

}  // namespace

TEST_F(Hdf5Dataset, RoundTrip3DWithAnEmptySplitAbsent) {
    const std::string path = file("d3.h5");
    write_dataset(path, attrs3d_, spatial3d_, {3, 2, 0});
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    expect_contents(path, attrs3d_, spatial3d_, {3, 2, 0});
    H5File f(path);
    EXPECT_EQ(H5Lexists(f.id, "test", H5P_DEFAULT), 0);  // absent, not an empty group
}

TEST_F(Hdf5Dataset, RoundTrip2DEverySplit) {
    const std::string path = file("d2.h5");
    write_dataset(path, attrs2d_, spatial2d_, {4, 1, 2});
    expect_contents(path, attrs2d_, spatial2d_, {4, 1, 2});
}

TEST_F(Hdf5Dataset, RoundTripOnlyTestSplitAndNoSplitsAtAll) {
    write_dataset(file("t.h5"), attrs2d_, spatial2d_, {0, 0, 1});
    expect_contents(file("t.h5"), attrs2d_, spatial2d_, {0, 0, 1});
    write_dataset(file("none.h5"), attrs3d_, spatial3d_, {0, 0, 0});
    DatasetReader r(file("none.h5"));
    EXPECT_TRUE(r.spatial().empty());
    EXPECT_EQ(r.count("train"), 0);
    EXPECT_FALSE(r.has_split("train"));
}

TEST_F(Hdf5Dataset, FileLayoutIsAsDocumented) {
    const std::string path = good_3d("layout.h5");
    H5File f(path);
    const hid_t ds = H5Dopen2(f.id, "/train/images", H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    const hid_t dcpl = H5Dget_create_plist(ds);
    hsize_t chunk[5] = {};
    ASSERT_EQ(H5Pget_layout(dcpl), H5D_CHUNKED);
    ASSERT_EQ(H5Pget_chunk(dcpl, 5, chunk), 5);
    EXPECT_EQ(std::vector<hsize_t>(chunk, chunk + 5), (std::vector<hsize_t>{1, 4, 3, 5, 6}));
    // shuffle + deflate, then a Fletcher32 checksum of the stored (compressed) chunk
    ASSERT_EQ(H5Pget_nfilters(dcpl), 3);
    unsigned flags = 0, cd[4] = {};
    size_t ncd = 4;
    EXPECT_EQ(H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, nullptr, nullptr), H5Z_FILTER_SHUFFLE);
    ncd = 4;
    EXPECT_EQ(H5Pget_filter2(dcpl, 1, &flags, &ncd, cd, 0, nullptr, nullptr), H5Z_FILTER_DEFLATE);
    EXPECT_EQ(cd[0], 4u);
    ncd = 4;
    EXPECT_EQ(H5Pget_filter2(dcpl, 2, &flags, &ncd, cd, 0, nullptr, nullptr), H5Z_FILTER_FLETCHER32);
    const hid_t type = H5Dget_type(ds);
    EXPECT_GT(H5Tequal(type, H5T_IEEE_F32LE), 0);
    H5Tclose(type);
    H5Pclose(dcpl);
    H5Dclose(ds);
    const hid_t ms = H5Dopen2(f.id, "/train/masks", H5P_DEFAULT);
    const hid_t mtype = H5Dget_type(ms);
    EXPECT_GT(H5Tequal(mtype, H5T_STD_U8LE), 0);
    H5Tclose(mtype);
    const hid_t mdcpl = H5Dget_create_plist(ms);
    EXPECT_EQ(H5Pget_filter2(mdcpl, 2, &flags, &ncd, cd, 0, nullptr, nullptr), H5Z_FILTER_FLETCHER32);
    H5Pclose(mdcpl);
    H5Dclose(ms);
    // case ids: fixed-length strings as long as the longest ("BRATS_1"), chunked, checksummed
    const hid_t ids = H5Dopen2(f.id, "/train/case_ids", H5P_DEFAULT);
    ASSERT_GE(ids, 0);
    const hid_t itype = H5Dget_type(ids);
    EXPECT_EQ(H5Tget_class(itype), H5T_STRING);
    EXPECT_EQ(H5Tis_variable_str(itype), 0);
    EXPECT_EQ(H5Tget_size(itype), 7u);
    EXPECT_EQ(H5Tget_cset(itype), H5T_CSET_UTF8);
    H5Tclose(itype);
    const hid_t idcpl = H5Dget_create_plist(ids);
    EXPECT_EQ(H5Pget_layout(idcpl), H5D_CHUNKED);
    EXPECT_EQ(H5Pget_filter2(idcpl, 0, &flags, &ncd, cd, 0, nullptr, nullptr), H5Z_FILTER_FLETCHER32);
    H5Pclose(idcpl);
    H5Dclose(ids);
    // No variable-length string anywhere: every root attribute is fixed length or an integer.
    for (const char* name : {"layout", "mode", "normalization", "crop", "source", "labels", "mask_labels"}) {
        const hid_t a = H5Aopen(f.id, name, H5P_DEFAULT);
        ASSERT_GE(a, 0) << name;
        const hid_t t = H5Aget_type(a);
        EXPECT_EQ(H5Tget_class(t), H5T_STRING) << name;
        EXPECT_EQ(H5Tis_variable_str(t), 0) << name;
        H5Tclose(t);
        H5Aclose(a);
    }
    // Metadata in the checksummed object format (superblock version 2 or later).
    H5F_info2_t info;
    ASSERT_GE(H5Fget_info2(f.id, &info), 0);
    EXPECT_GE(info.super.version, 2u);
}

// A dataset as unet_prepare wrote them before fixed-length strings and checksums: the earliest
// object format, variable-length string attributes and case ids, chunks without Fletcher32.
void write_old_style_dataset(const std::string& path, const DatasetAttributes& attrs,
                             const std::vector<int64_t>& spatial, const std::vector<int64_t>& counts) {
    const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t scalar = H5Screate(H5S_SCALAR);
    const hid_t vlen = H5Tcopy(H5T_C_S1);
    H5Tset_size(vlen, H5T_VARIABLE);
    H5Tset_cset(vlen, H5T_CSET_UTF8);
    auto int_attr = [&](const char* name, int64_t v, hid_t type) {
        const hid_t a = H5Acreate2(f, name, type, scalar, H5P_DEFAULT, H5P_DEFAULT);
        EXPECT_GE(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
        H5Aclose(a);
    };
    auto str_attr = [&](const char* name, const std::string& v) {
        const hid_t a = H5Acreate2(f, name, vlen, scalar, H5P_DEFAULT, H5P_DEFAULT);
        const char* p = v.c_str();
        EXPECT_GE(H5Awrite(a, vlen, &p), 0);
        H5Aclose(a);
    };
    int_attr("format_version", 2, H5T_STD_I32LE);
    str_attr("layout", attrs.mode == "3d" ? "NCDHW" : "NCHW");
    str_attr("mode", attrs.mode);
    int_attr("channels", attrs.channels, H5T_STD_I32LE);
    str_attr("normalization", attrs.normalization);
    str_attr("crop", attrs.crop);
    int_attr("split_seed", attrs.split_seed, H5T_STD_I64LE);
    str_attr("source", attrs.source);
    str_attr("labels", attrs.labels);
    str_attr("mask_labels", attrs.mask_labels);
    for (int sp = 0; sp < 3; ++sp) {
        const hsize_t n = hsize_t(counts[size_t(sp)]);
        if (n == 0) continue;
        const hid_t g = H5Gcreate2(f, kSplits[sp], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        for (int which = 0; which < 2; ++which) {
            const hsize_t c = which == 0 ? hsize_t(attrs.channels) : 1;
            std::vector<hsize_t> dims{n, c}, chunk{1, c};
            for (int64_t d : spatial) dims.push_back(hsize_t(d)), chunk.push_back(hsize_t(d));
            const hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
            const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
            H5Pset_chunk(dcpl, int(chunk.size()), chunk.data());
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, 4);
            const hid_t d = H5Dcreate2(g, which == 0 ? "images" : "masks", which == 0 ? H5T_IEEE_F32LE : H5T_STD_U8LE,
                                       space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
            std::vector<float> images;
            std::vector<uint8_t> masks;
            for (hsize_t i = 0; i < n; ++i) {
                const Sample x = make_sample(sp, int64_t(i), attrs.channels, spatial);
                images.insert(images.end(), x.image.begin(), x.image.end());
                masks.insert(masks.end(), x.mask.begin(), x.mask.end());
            }
            EXPECT_GE(which == 0 ? H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, images.data())
                                 : H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, masks.data()),
                      0);
            H5Dclose(d);
            H5Pclose(dcpl);
            H5Sclose(space);
        }
        std::vector<std::string> ids;
        std::vector<const char*> ptrs;
        for (hsize_t i = 0; i < n; ++i) ids.push_back(make_sample(sp, int64_t(i), attrs.channels, spatial).case_id);
        for (const std::string& id : ids) ptrs.push_back(id.c_str());
        const hid_t space = H5Screate_simple(1, &n, nullptr);
        const hid_t d = H5Dcreate2(g, "case_ids", vlen, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        EXPECT_GE(H5Dwrite(d, vlen, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), 0);
        H5Dclose(d);
        H5Sclose(space);
        H5Gclose(g);
    }
    H5Tclose(vlen);
    H5Sclose(scalar);
    ASSERT_GE(H5Fclose(f), 0);
}

TEST_F(Hdf5Dataset, OldFilesWithVariableLengthStringsRead) {
    const std::string path = file("old.h5");
    write_old_style_dataset(path, attrs3d_, spatial3d_, {3, 2, 1});
    {
        H5File f(path);  // it is the old layout
        const hid_t ids = H5Dopen2(f.id, "/train/case_ids", H5P_DEFAULT);
        const hid_t t = H5Dget_type(ids);
        EXPECT_GT(H5Tis_variable_str(t), 0);
        H5Tclose(t);
        H5Dclose(ids);
    }
    expect_contents(path, attrs3d_, spatial3d_, {3, 2, 1});
}

// A bit flipped on disk inside a sample is refused when that sample is read, naming it; the
// other samples still read.
TEST_F(Hdf5Dataset, AFlippedBitInASampleIsFoundByItsChecksum) {
    const std::string path = good_3d("flip.h5");
    haddr_t addr = 0;
    hsize_t size = 0;
    {
        H5File f(path);
        const hid_t ds = H5Dopen2(f.id, "/train/images", H5P_DEFAULT);
        const hsize_t sample1[5] = {1, 0, 0, 0, 0};
        unsigned mask = 0;
        ASSERT_GE(H5Dget_chunk_info_by_coord(ds, sample1, &mask, &addr, &size), 0);
        H5Dclose(ds);
    }
    {
        std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
        io.seekg(std::streamoff(addr + size / 2));
        char b = 0;
        io.read(&b, 1);
        b = char(b ^ 0x20);
        io.seekp(std::streamoff(addr + size / 2));
        io.write(&b, 1);
    }
    DatasetReader r(path);
    std::vector<float> image(size_t(4 * product(spatial3d_))), mask(size_t(product(spatial3d_)));
    r.read_sample("train", 0, image.data(), mask.data());
    try {
        r.read_sample("train", 1, image.data(), mask.data());
        ADD_FAILURE() << "a damaged sample was read";
    } catch (const std::runtime_error& e) {
        const std::string msg = e.what();
        EXPECT_TRUE(contains(msg, path + ": /train/images sample 1: the file is damaged (")) << msg;
        EXPECT_TRUE(contains(msg, "Fletcher32")) << msg;
    }
    r.read_sample("val", 0, image.data(), mask.data());
}

// Sizes a file states are bounded before they size a buffer or an index.
TEST_F(Hdf5Dataset, ImplausibleSizesAreRefused) {
    // case ids of a megabyte each
    std::string path = good_3d("ids.h5");
    {
        H5File f(path);
        const hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, size_t(1) << 20);
        replace_dataset(f.id, "/train/case_ids", t, {2});
        H5Tclose(t);
    }
    std::string msg = open_error(path);
    EXPECT_TRUE(contains(msg, "/train/case_ids: 2 strings of 1048576 bytes exceed the bounds")) << msg;
    // more samples than the file has bytes (declared, never written: the file stays small)
    path = good_3d("n.h5");
    {
        H5File f(path);
        replace_dataset(f.id, "/train/images", H5T_IEEE_F32LE, {hsize_t(1) << 32, 4, 3, 5, 6});
    }
    msg = open_error(path);
    EXPECT_TRUE(contains(msg, "/train/images: shape [4294967296, 4, 3, 5, 6] claims more samples")) << msg;
    // a spatial size no scanner makes
    path = good_3d("s.h5");
    {
        H5File f(path);
        replace_dataset(f.id, "/train/images", H5T_IEEE_F32LE, {2, 4, 3, 5, hsize_t(1) << 20});
    }
    msg = open_error(path);
    EXPECT_TRUE(contains(msg, "has a spatial size above 65536")) << msg;
}

TEST_F(Hdf5Dataset, FixedLengthStringAttributesAreReadToo) {
    const std::string path = good_3d("fixed.h5");
    {
        H5File f(path);
        set_fixed_string_attr(f.id, "layout", "NCDHW");
        set_fixed_string_attr(f.id, "source", "written elsewhere");
    }
    DatasetReader r(path);
    EXPECT_EQ(r.attributes().source, "written elsewhere");
}

TEST_F(Hdf5Dataset, WorksWithFileLockingDisabled) {
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
    const std::string path = file("nolock.h5");
    write_dataset(path, attrs2d_, spatial2d_, {2, 0, 0});
    expect_contents(path, attrs2d_, spatial2d_, {2, 0, 0});
    unsetenv("HDF5_USE_FILE_LOCKING");
}

TEST_F(Hdf5Dataset, ConcurrentReadersAndSharedReaderAgree) {
    const std::string path = file("mt.h5");
    write_dataset(path, attrs2d_, spatial2d_, {6, 0, 0});
    DatasetReader shared(path);
    const int64_t v = product(spatial2d_);
    std::vector<int> bad(4, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            DatasetReader own(path);
            std::vector<float> image(static_cast<size_t>(3 * v)), mask(static_cast<size_t>(v));
            for (int rep = 0; rep < 20; ++rep)
                for (int64_t i = 0; i < 6; ++i) {
                    const Sample x = make_sample(0, i, 3, spatial2d_);
                    (t % 2 ? own : shared).read_sample("train", i, image.data(), mask.data());
                    bad[size_t(t)] += std::memcmp(image.data(), x.image.data(), image.size() * 4) != 0;
                }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad, (std::vector<int>{0, 0, 0, 0}));
}

TEST_F(Hdf5Dataset, HalfWrittenFileNeverHasTheFinalName) {
    const std::string path = file("half.h5");
    {
        DatasetWriter w(path, attrs3d_, spatial3d_);
        w.add_split("train", 2);
        const Sample x = make_sample(0, 0, 4, spatial3d_);
        w.write_sample("train", 0, x.image.data(), x.mask.data(), x.case_id);
        EXPECT_TRUE(fs::exists(path + ".tmp"));
        EXPECT_FALSE(fs::exists(path));
    }  // destroyed without finish()
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    EXPECT_FALSE(fs::exists(path));

    // An earlier finished file under the final name survives a failed rewrite untouched.
    write_dataset(path, attrs2d_, spatial2d_, {1, 0, 0});
    const auto size = fs::file_size(path);
    {
        DatasetWriter w(path, attrs3d_, spatial3d_);
        w.add_split("train", 1);
    }
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    EXPECT_EQ(fs::file_size(path), size);
    expect_contents(path, attrs2d_, spatial2d_, {1, 0, 0});
}

TEST_F(Hdf5Dataset, WriteSampleOutsideTheDeclaredSplitsErrors) {
    const std::string path = file("w.h5");
    DatasetWriter w(path, attrs3d_, spatial3d_);
    w.add_split("train", 2);
    w.add_split("test", 0);
    const Sample x = make_sample(0, 0, 4, spatial3d_);
    EXPECT_THROW(w.write_sample("val", 0, x.image.data(), x.mask.data(), "a"), std::runtime_error);
    EXPECT_THROW(w.write_sample("test", 0, x.image.data(), x.mask.data(), "a"), std::runtime_error);
    EXPECT_THROW(w.write_sample("train", 2, x.image.data(), x.mask.data(), "a"), std::runtime_error);
    EXPECT_THROW(w.write_sample("train", -1, x.image.data(), x.mask.data(), "a"), std::runtime_error);
    EXPECT_THROW(w.add_split("train", 3), std::runtime_error);   // twice
    EXPECT_THROW(w.add_split("holdout", 1), std::runtime_error);  // not a split name
    std::vector<uint8_t> labels = x.mask;
    labels[3] = 2;  // raw BraTS labels, not a 0/1 mask
    try {
        w.write_sample("train", 0, x.image.data(), labels.data(), "a");
        ADD_FAILURE() << "mask value 2 accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(contains(e.what(), "mask value 2")) << e.what();
        EXPECT_TRUE(contains(e.what(), path + ".tmp")) << e.what();
    }
    try {
        w.write_sample("val", 0, x.image.data(), x.mask.data(), "a");
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(contains(e.what(), "/val")) << e.what();
        EXPECT_TRUE(contains(e.what(), "add_split")) << e.what();
    }
}

TEST_F(Hdf5Dataset, BadWriterArgumentsError) {
    DatasetAttributes a = attrs3d_;
    EXPECT_THROW(DatasetWriter(file("a.h5"), a, {5, 6}), std::runtime_error);  // 3d needs D,H,W
    a.mode = "4d";
    EXPECT_THROW(DatasetWriter(file("a.h5"), a, {5, 6}), std::runtime_error);
    EXPECT_THROW(DatasetWriter(file("a.h5"), attrs2d_, {0, 6}), std::runtime_error);
    EXPECT_FALSE(fs::exists(file("a.h5.tmp")));
    try {
        DatasetWriter w(file("no/such/dir/a.h5"), attrs2d_, spatial2d_);
        ADD_FAILURE() << "created a file in a missing directory";
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(contains(e.what(), file("no/such/dir/a.h5.tmp"))) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
}

TEST_F(Hdf5Dataset, FinishWithMissingSamplesErrorsAndCanBeCompleted) {
    const std::string path = file("missing.h5");
    DatasetWriter w(path, attrs2d_, spatial2d_);
    w.add_split("train", 3);
    w.add_split("val", 1);
    for (int64_t i : {0, 2}) {
        const Sample x = make_sample(0, i, 3, spatial2d_);
        w.write_sample("train", i, x.image.data(), x.mask.data(), x.case_id);
    }
    const Sample v = make_sample(1, 0, 3, spatial2d_);
    w.write_sample("val", 0, v.image.data(), v.mask.data(), v.case_id);
    try {
        w.finish();
        ADD_FAILURE() << "finish() with a missing sample succeeded";
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(contains(e.what(), "/train")) << e.what();
        EXPECT_TRUE(contains(e.what(), "1 of 3 samples not written (first missing index 1)")) << e.what();
    }
    EXPECT_FALSE(fs::exists(path));
    const Sample x = make_sample(0, 1, 3, spatial2d_);
    w.write_sample("train", 1, x.image.data(), x.mask.data(), x.case_id);
    w.finish();
    EXPECT_THROW(w.finish(), std::runtime_error);
    expect_contents(path, attrs2d_, spatial2d_, {3, 1, 0});
}

TEST_F(Hdf5Dataset, OtherFormatVersionIsRejected) {
    const std::string path = good_3d("v3.h5");
    {
        H5File f(path);
        set_int_attr(f.id, "format_version", 3);
    }
    const std::string msg = open_error(path);
    EXPECT_TRUE(contains(msg, "format_version 3")) << msg;
    EXPECT_TRUE(contains(msg, "reads format_version 1 and 2")) << msg;
}

// Format 2 keeps MSD's labels 0-3: the label map reads back as written, and every region's mask is
// made from it (WT {1,2,3}, TC {2,3}, ET {3}).
TEST_F(Hdf5Dataset, MsdLabelsRoundTripAndGiveEveryRegion) {
    const std::string path = file("labels.h5");
    DatasetAttributes a = attrs2d_;
    a.mask_labels = kMaskLabelsMsd;
    const std::vector<int64_t> sp{2, 4};
    const std::vector<float> image(size_t(a.channels * 8), 1.f);
    const std::vector<uint8_t> labels{0, 1, 2, 3, 3, 2, 1, 0};
    {
        DatasetWriter w(path, a, sp);
        w.add_split("train", 1);
        w.write_sample("train", 0, image.data(), labels.data(), "case");
        const uint8_t four[8] = {0, 0, 0, 4, 0, 0, 0, 0};
        try {
            w.write_sample("train", 0, image.data(), four, "bad");
            ADD_FAILURE() << "a label 4 was written";
        } catch (const std::runtime_error& e) {
            EXPECT_TRUE(contains(e.what(), "mask value 4; msd masks hold 0-3")) << e.what();
        }
        w.finish();
    }
    DatasetReader r(path);
    EXPECT_EQ(r.attributes().mask_labels, kMaskLabelsMsd);
    std::vector<float> img(image.size());
    std::vector<uint8_t> back(8);
    r.read_labels("train", 0, img.data(), back.data());
    EXPECT_EQ(back, labels);
    std::vector<float> masks(3 * 8);
    r.read_sample("train", 0, img.data(), masks.data(), brats_regions());
    const std::vector<float> expected{0, 1, 1, 1, 1, 1, 1, 0,   // WT
                                      0, 0, 1, 1, 1, 1, 0, 0,   // TC
                                      0, 0, 0, 1, 1, 0, 0, 0};  // ET
    EXPECT_EQ(masks, expected);
}

// A first-wave (version 1) file reads as before, its masks binary: the whole tumour trains, and
// a region run is refused with one line naming --labels and the file.
TEST_F(Hdf5Dataset, VersionOneReadsAsBinaryAndRefusesRegions) {
    const std::string path = good_3d("v1.h5");
    {
        H5File f(path);
        set_int_attr(f.id, "format_version", 1);
        EXPECT_GE(H5Adelete(f.id, "mask_labels"), 0);
    }
    DatasetReader r(path);
    EXPECT_EQ(r.attributes().mask_labels, kMaskLabelsBinary);
    const Sample x = make_sample(0, 1, attrs3d_.channels, spatial3d_);
    std::vector<float> img(x.image.size()), mask(x.mask.size());
    r.read_sample("train", 1, img.data(), mask.data());
    for (size_t i = 0; i < mask.size(); ++i) EXPECT_EQ(mask[i], float(x.mask[i])) << i;
    try {
        r.check_regions(parse_regions("wt,et"));
        FAIL() << "a region run on binary masks was accepted";
    } catch (const UsageError& e) {
        const std::string msg = e.what();
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        EXPECT_TRUE(contains(msg, "--labels wt,et")) << msg;
        EXPECT_TRUE(contains(msg, path)) << msg;
        EXPECT_TRUE(contains(msg, "binary tumour masks")) << msg;
    }
    EXPECT_THROW(r.read_sample("train", 1, img.data(), mask.data(), brats_regions()), UsageError);
}

TEST_F(Hdf5Dataset, HdfFileThatIsNotOurDatasetIsRejected) {
    const std::string path = file("other.h5");
    const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    replace_dataset(f, "/imgs_train", H5T_IEEE_F32LE, {2, 8, 8, 4});  // Intel's layout
    H5Fclose(f);
    const std::string msg = open_error(path);
    EXPECT_TRUE(contains(msg, "not a unet dataset")) << msg;
    EXPECT_TRUE(contains(msg, "format_version 1")) << msg;
}

TEST_F(Hdf5Dataset, WrongDtypesAreRejected) {
    const std::string path = good_3d("f64.h5");
    {
        H5File f(path);
        replace_dataset(f.id, "/train/images", H5T_IEEE_F64LE, {2, 4, 3, 5, 6});
    }
    std::string msg = open_error(path);
    EXPECT_TRUE(contains(msg, "/train/images")) << msg;
    EXPECT_TRUE(contains(msg, "float32")) << msg;

    const std::string path2 = good_3d("i16.h5");
    {
        H5File f(path2);
        replace_dataset(f.id, "/val/masks", H5T_STD_I8LE, {1, 1, 3, 5, 6});
    }
    msg = open_error(path2);
    EXPECT_TRUE(contains(msg, "/val/masks")) << msg;
    EXPECT_TRUE(contains(msg, "uint8")) << msg;
}

TEST_F(Hdf5Dataset, LayoutModeAndShapeMismatchesAreRejected) {
    std::string path = good_3d("layout.h5");
    {
        H5File f(path);
        set_fixed_string_attr(f.id, "layout", "NCHW");
    }
    std::string msg = open_error(path);
    EXPECT_TRUE(contains(msg, "'NCHW' does not match mode 3d")) << msg;

    path = good_3d("channels.h5");
    {
        H5File f(path);
        set_int_attr(f.id, "channels", 3);
    }
    msg = open_error(path);
    EXPECT_TRUE(contains(msg, "channels")) << msg;

    path = good_3d("splits.h5");
    {
        H5File f(path);
        replace_dataset(f.id, "/val/images", H5T_IEEE_F32LE, {1, 4, 3, 5, 7});
        replace_dataset(f.id, "/val/masks", H5T_STD_U8LE, {1, 1, 3, 5, 7});
    }
    msg = open_error(path);
    EXPECT_TRUE(contains(msg, "/val/images")) << msg;
    EXPECT_TRUE(contains(msg, "differs from the other splits")) << msg;

    path = good_3d("masks.h5");
    {
        H5File f(path);
        replace_dataset(f.id, "/train/masks", H5T_STD_U8LE, {2, 1, 3, 5, 5});
    }
    msg = open_error(path);
    EXPECT_TRUE(contains(msg, "/train/masks")) << msg;

    path = good_3d("rank.h5");
    {
        H5File f(path);
        set_fixed_string_attr(f.id, "mode", "2d");
        set_fixed_string_attr(f.id, "layout", "NCHW");
    }
    msg = open_error(path);
    EXPECT_TRUE(contains(msg, "/train/images")) << msg;
    EXPECT_TRUE(contains(msg, "does not match layout NCHW")) << msg;
}

TEST_F(Hdf5Dataset, NonHdf5TruncatedAndMissingFilesAreClearErrors) {
    const std::string text = file("notes.h5");
    std::ofstream(text) << "not hdf5\n";
    std::string msg = open_error(text);
    EXPECT_TRUE(contains(msg, "not an HDF5 file")) << msg;
    EXPECT_TRUE(contains(msg, "format_version 1")) << msg;

    const std::string good = good_3d("whole.h5");
    const std::string cut = file("cut.h5");
    fs::copy_file(good, cut);
    fs::resize_file(cut, fs::file_size(good) / 2);
    msg = open_error(cut);
    EXPECT_TRUE(contains(msg, "truncated")) << msg;

    msg = open_error(file("absent.h5"));
    EXPECT_TRUE(contains(msg, "No such file")) << msg;
}

TEST_F(Hdf5Dataset, ReadSampleErrorsNameSplitAndIndex) {
    const std::string path = good_3d("r.h5");
    DatasetReader r(path);
    std::vector<float> image(static_cast<size_t>(4 * product(spatial3d_))), mask(static_cast<size_t>(product(spatial3d_)));
    try {
        r.read_sample("test", 0, image.data(), mask.data());
        ADD_FAILURE() << "read from an absent split";
    } catch (const std::runtime_error& e) {
        EXPECT_TRUE(contains(e.what(), "/test")) << e.what();
        EXPECT_TRUE(contains(e.what(), "train, val")) << e.what();
    }
    EXPECT_THROW(r.read_sample("train", 2, image.data(), mask.data()), std::runtime_error);
    EXPECT_THROW(r.read_sample("train", -1, image.data(), mask.data()), std::runtime_error);
    EXPECT_THROW(r.case_id("val", 1), std::runtime_error);
    r.read_sample("train", 1, image.data(), mask.data());  // still usable
}
