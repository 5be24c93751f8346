// The HDF5 dataset writer (hdf5_dataset.h): everything under "<path>.tmp", committed whole.
#include "unet/data/hdf5_dataset.h"

#include "unet/io/atomic_file.h"
#include "unet/io/hdf5_util.h"
#include "hdf5_dataset_common.h"
#include "unet/core/dims.h"

#include <hdf5.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace unet {

// ------------------------------------------------------------------------------------------------
// Writer

namespace {

struct SplitOut {
    int64_t count = 0;
    Handle group, images, masks, image_space, mask_space;
    std::vector<bool> written;
    int64_t n_written = 0;
    std::vector<std::string> case_ids;
};

}  // namespace

struct DatasetWriter::Impl {
    std::string path, tmp;
    DatasetAttributes attrs;
    std::vector<int64_t> spatial;
    int64_t voxels = 0;
    Handle file;
    Handle image_mem, mask_mem;  // one sample in memory, reused by every write
    std::map<std::string, SplitOut> splits;
    bool created = false;  // the .tmp file exists and is ours to remove
    bool finished = false;
    int64_t bytes = 0;
    uint8_t max_label = 1;  // of attrs.mask_labels

    void open(const std::string& path, const DatasetAttributes& attrs, const std::vector<int64_t>& spatial);

    // Closes every id, the file last; returns the first failure (negative) or 0.
    herr_t close_all() {
        herr_t r = 0;
        auto keep = [&r](herr_t x) {
            if (x < 0 && r >= 0) r = x;
        };
        for (auto& kv : splits) {
            SplitOut& s = kv.second;
            keep(s.image_space.close());
            keep(s.mask_space.close());
            keep(s.images.close());
            keep(s.masks.close());
            keep(s.group.close());
        }
        keep(image_mem.close());
        keep(mask_mem.close());
        keep(file.close());
        return r;
    }

    // Fixed-length strings as long as the longest id, one chunk, checksummed.
    void write_case_ids(const std::string& name, SplitOut& s) {
        const std::string object = "/" + name + "/case_ids";
        size_t len = 1;
        for (const std::string& c : s.case_ids) len = std::max(len, c.size());
        Handle type = fixed_string_type(len, tmp, object);
        const hsize_t n = hsize_t(s.count);
        Handle space = checked(H5Screate_simple(1, &n, nullptr), H5Sclose, tmp, object, "H5Screate_simple");
        Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, tmp, object, "H5Pcreate");
        check(H5Pset_chunk(dcpl.get(), 1, &n), tmp, object, "H5Pset_chunk");
        add_checksum(dcpl.get(), tmp, object);
        Handle ds = checked(
            H5Dcreate2(s.group.get(), "case_ids", type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
            H5Dclose, tmp, object, "H5Dcreate2");
        std::vector<char> buf(len * s.case_ids.size(), '\0');
        for (size_t i = 0; i < s.case_ids.size(); ++i) std::memcpy(&buf[i * len], s.case_ids[i].data(), s.case_ids[i].size());
        check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), tmp, object, "H5Dwrite");
        check(ds.close(), tmp, object, "H5Dclose");
    }
};

DatasetWriter::DatasetWriter(const std::string& path, const DatasetAttributes& attrs,
                             const std::vector<int64_t>& spatial)
    : impl_(new Impl) {
    try {
        impl_->open(path, attrs, spatial);
    } catch (...) {
        impl_->close_all();
        if (impl_->created) std::remove(impl_->tmp.c_str());
        throw;
    }
}

void DatasetWriter::Impl::open(const std::string& path_, const DatasetAttributes& attrs_,
                               const std::vector<int64_t>& spatial_) {
    Impl& m = *this;
    const std::string& path = path_;
    const DatasetAttributes& attrs = attrs_;
    const std::vector<int64_t>& spatial = spatial_;
    m.path = path;
    m.tmp = temporary_path(path);
    m.attrs = attrs;
    m.spatial = spatial;
    silence_hdf5_errors(m.tmp);

    const size_t want_rank = attrs.mode == "3d" ? 3 : attrs.mode == "2d" ? 2 : 0;
    if (want_rank == 0) fail_format(path, "mode", "mode '" + attrs.mode + "' is neither '3d' nor '2d'");
    if (spatial.size() != want_rank)
        fail_format(path, "spatial", "mode " + attrs.mode + " needs " + std::to_string(want_rank) +
                                         " spatial sizes, got " + std::to_string(spatial.size()));
    for (int64_t d : spatial)
        if (d <= 0 || uint64_t(d) > kMaxSpatialSize)
            fail_format(path, "spatial", "spatial sizes must be in [1, " + std::to_string(kMaxSpatialSize) + "]");
    if (attrs.channels <= 0) fail_format(path, "channels", "channels must be positive");
    m.voxels = product(spatial);
    // HDF5 chunks must stay under 4 GiB; one chunk is one sample.
    if (double(attrs.channels) * double(m.voxels) * 4.0 >= 4294967296.0)
        fail_format(path, "spatial", "one sample exceeds the 4 GiB HDF5 chunk limit");

    Handle fcpl = checked(H5Pcreate(H5P_FILE_CREATE), H5Pclose, m.tmp, "file", "H5Pcreate");
    Handle fapl = file_access_plist(m.tmp);
    // Refuse to close the file while an object is still open: a leak would otherwise leave the
    // file half-flushed behind a successful H5Fclose.
    check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_SEMI), m.tmp, "file access", "H5Pset_fclose_degree");
    use_checksummed_format(fapl.get(), m.tmp);
    m.file = checked(H5Fcreate(m.tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose, m.tmp, "file",
                     "H5Fcreate");
    m.created = true;

    const hid_t root = m.file.get();
    write_int_attr(root, "format_version", kDatasetFormatVersion, H5T_STD_I32LE, m.tmp, "attribute format_version");
    write_string_attr(root, "layout", attrs.mode == "3d" ? "NCDHW" : "NCHW", m.tmp, "attribute layout");
    write_string_attr(root, "mode", attrs.mode, m.tmp, "attribute mode");
    write_int_attr(root, "channels", attrs.channels, H5T_STD_I32LE, m.tmp, "attribute channels");
    write_string_attr(root, "normalization", attrs.normalization, m.tmp, "attribute normalization");
    write_string_attr(root, "crop", attrs.crop, m.tmp, "attribute crop");
    write_int_attr(root, "split_seed", attrs.split_seed, H5T_STD_I64LE, m.tmp, "attribute split_seed");
    write_string_attr(root, "source", attrs.source, m.tmp, "attribute source");
    write_string_attr(root, "labels", attrs.labels, m.tmp, "attribute labels");
    if (attrs.mask_labels != kMaskLabelsMsd && attrs.mask_labels != kMaskLabelsBinary)
        fail_format(path, "attribute mask_labels", "'" + attrs.mask_labels + "' is neither msd nor binary");
    write_string_attr(root, "mask_labels", attrs.mask_labels, m.tmp, "attribute mask_labels");
    m.max_label = uint8_t(max_mask_label(attrs.mask_labels));

    std::vector<hsize_t> img{1, hsize_t(attrs.channels)}, msk{1, 1};
    for (int64_t d : spatial) {
        img.push_back(hsize_t(d));
        msk.push_back(hsize_t(d));
    }
    m.image_mem =
        checked(H5Screate_simple(int(img.size()), img.data(), nullptr), H5Sclose, m.tmp, "memory", "H5Screate_simple");
    m.mask_mem =
        checked(H5Screate_simple(int(msk.size()), msk.data(), nullptr), H5Sclose, m.tmp, "memory", "H5Screate_simple");
}

DatasetWriter::~DatasetWriter() {
    if (!impl_ || impl_->finished) return;
    impl_->close_all();
    if (impl_->created) std::remove(impl_->tmp.c_str());
}

void DatasetWriter::add_split(const std::string& split, int64_t count) {
    Impl& m = *impl_;
    silence_hdf5_errors(m.tmp);
    if (m.finished) fail_format(m.path, "/" + split, "add_split after finish()");
    if (!is_split_name(split)) fail_format(m.tmp, "/" + split, "split must be train, val or test");
    if (m.splits.count(split)) fail_format(m.tmp, "/" + split, "split declared twice");
    if (count < 0) fail_format(m.tmp, "/" + split, "negative sample count");
    SplitOut& s = m.splits[split];
    s.count = count;
    if (count == 0) return;  // an empty split is absent from the file
    s.written.assign(size_t(count), false);
    s.case_ids.resize(size_t(count));

    const std::string gname = "/" + split;
    s.group = checked(H5Gcreate2(m.file.get(), split.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, m.tmp,
                      gname, "H5Gcreate2");

    // Chunks are compressed as they are written (no chunk cache) so memory stays at one sample and
    // a full disk shows up in write_sample, not in finish().
    Handle dapl = checked(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose, m.tmp, gname, "H5Pcreate");
    check(H5Pset_chunk_cache(dapl.get(), H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, 1.0), m.tmp, gname,
          "H5Pset_chunk_cache");

    auto create = [&](const char* name, int64_t channels, hid_t file_type, Handle& ds, Handle& space) {
        const std::string object = gname + "/" + name;
        std::vector<hsize_t> dims{hsize_t(count), hsize_t(channels)}, chunk{1, hsize_t(channels)};
        for (int64_t d : m.spatial) {
            dims.push_back(hsize_t(d));
            chunk.push_back(hsize_t(d));
        }
        const int rank = int(dims.size());
        space = checked(H5Screate_simple(rank, dims.data(), nullptr), H5Sclose, m.tmp, object, "H5Screate_simple");
        Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, m.tmp, object, "H5Pcreate");
        check(H5Pset_chunk(dcpl.get(), rank, chunk.data()), m.tmp, object, "H5Pset_chunk");
        check(H5Pset_shuffle(dcpl.get()), m.tmp, object, "H5Pset_shuffle");
        check(H5Pset_deflate(dcpl.get(), 4), m.tmp, object, "H5Pset_deflate");
        add_checksum(dcpl.get(), m.tmp, object);
        ds = checked(H5Dcreate2(s.group.get(), name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), dapl.get()),
                     H5Dclose, m.tmp, object, "H5Dcreate2");
    };
    create("images", m.attrs.channels, H5T_IEEE_F32LE, s.images, s.image_space);
    create("masks", 1, H5T_STD_U8LE, s.masks, s.mask_space);
}

void DatasetWriter::write_sample(const std::string& split, int64_t index, const float* image, const uint8_t* mask,
                                 const std::string& case_id) {
    Impl& m = *impl_;
    silence_hdf5_errors(m.tmp);
    if (m.finished) fail_format(m.path, "/" + split, "write_sample after finish()");
    auto it = m.splits.find(split);
    if (it == m.splits.end()) fail_format(m.tmp, "/" + split, "write_sample to a split not declared with add_split");
    SplitOut& s = it->second;
    if (index < 0 || index >= s.count)
        fail_format(m.tmp, "/" + split,
                    "sample index " + std::to_string(index) + " outside [0, " + std::to_string(s.count) + ")");
    if (!image || !mask) fail_format(m.tmp, "/" + split, "write_sample with a null image or mask");
    if (case_id.size() > kMaxCaseIdBytes || case_id.find('\0') != std::string::npos)
        fail_format(m.tmp, "/" + split + "/case_ids",
                    "sample " + std::to_string(index) + ": a case id holds at most " + std::to_string(kMaxCaseIdBytes) +
                        " bytes and no NUL");
    for (int64_t i = 0; i < m.voxels; ++i)
        if (mask[i] > m.max_label)
            fail_format(m.tmp, "/" + split + "/masks",
                        "sample " + std::to_string(index) + " (" + case_id + ") has mask value " +
                            std::to_string(int(mask[i])) + "; " + m.attrs.mask_labels + " masks hold 0-" +
                            std::to_string(int(m.max_label)));

    const size_t rank = 2 + m.spatial.size();
    std::vector<hsize_t> start(rank, 0), img(rank), msk(rank);
    start[0] = hsize_t(index);
    img[0] = msk[0] = 1;
    img[1] = hsize_t(m.attrs.channels);
    msk[1] = 1;
    for (size_t i = 0; i < m.spatial.size(); ++i) img[2 + i] = msk[2 + i] = hsize_t(m.spatial[i]);

    const std::string gname = "/" + split;
    check(H5Sselect_hyperslab(s.image_space.get(), H5S_SELECT_SET, start.data(), nullptr, img.data(), nullptr), m.tmp,
          gname + "/images", "H5Sselect_hyperslab");
    check(H5Dwrite(s.images.get(), H5T_NATIVE_FLOAT, m.image_mem.get(), s.image_space.get(), H5P_DEFAULT, image),
          m.tmp, gname + "/images", "H5Dwrite");
    check(H5Sselect_hyperslab(s.mask_space.get(), H5S_SELECT_SET, start.data(), nullptr, msk.data(), nullptr), m.tmp,
          gname + "/masks", "H5Sselect_hyperslab");
    check(H5Dwrite(s.masks.get(), H5T_NATIVE_UINT8, m.mask_mem.get(), s.mask_space.get(), H5P_DEFAULT, mask), m.tmp,
          gname + "/masks", "H5Dwrite");
    if (!s.written[size_t(index)]) {
        s.written[size_t(index)] = true;
        ++s.n_written;
    }
    s.case_ids[size_t(index)] = case_id;
}

void DatasetWriter::finish() {
    Impl& m = *impl_;
    silence_hdf5_errors(m.tmp);
    if (m.finished) fail_format(m.path, "file", "finish() called twice");
    for (const char* name : kSplitNames) {
        auto it = m.splits.find(name);
        if (it == m.splits.end() || it->second.n_written == it->second.count) continue;
        const SplitOut& s = it->second;
        const int64_t first = std::find(s.written.begin(), s.written.end(), false) - s.written.begin();
        fail_format(m.tmp, std::string("/") + name,
                    std::to_string(s.count - s.n_written) + " of " + std::to_string(s.count) +
                        " samples not written (first missing index " + std::to_string(first) + ")");
    }
    for (auto& kv : m.splits)
        if (kv.second.count > 0) m.write_case_ids(kv.first, kv.second);
    check(H5Fflush(m.file.get(), H5F_SCOPE_LOCAL), m.tmp, "file", "H5Fflush");
    if (m.close_all() < 0) fail_h5(m.tmp, "file", "closing failed");
    commit_file(m.tmp, m.path);
    m.finished = true;
    struct stat st;
    if (::stat(m.path.c_str(), &st) != 0) fail_format(m.path, "file", std::string("stat: ") + std::strerror(errno));
    m.bytes = int64_t(st.st_size);
}

int64_t DatasetWriter::bytes_written() const { return impl_->bytes; }

}  // namespace unet
