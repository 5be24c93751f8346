#include "unet/data/hdf5_dataset.h"

#include "unet/io/atomic_file.h"
#include "unet/io/hdf5_util.h"
#include "hdf5_dataset_common.h"
#include "unet/core/check.h"
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
// Reader

namespace {

struct SplitIn {
    int64_t count = 0;
    Handle images, masks, image_space, mask_space;
    std::vector<std::string> case_ids;
};

std::string read_string_attr(hid_t loc, const char* name, const std::string& path) {
    const std::string object = std::string("attribute ") + name;
    Handle attr = checked(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose, path, object, "H5Aopen");
    return read_string(attr.get(), true, path, object, kMaxAttributeBytes);
}


// "float64", "int8", "string": for messages about a dataset of the wrong type.
std::string type_name(hid_t type) {
    const size_t bits = 8 * H5Tget_size(type);
    switch (H5Tget_class(type)) {
        case H5T_FLOAT: return "float" + std::to_string(bits);
        case H5T_INTEGER: return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
        case H5T_STRING: return "string";
        case H5T_COMPOUND: return "a compound type";
        default: return "another HDF5 type";
    }
}


std::vector<std::string> read_strings(hid_t ds, hid_t space, int64_t n, const std::string& path,
                                      const std::string& object) {
    Handle ftype = checked(H5Dget_type(ds), H5Tclose, path, object, "H5Dget_type");
    std::vector<std::string> out(static_cast<size_t>(n));  // n is at most kMaxSamples
    if (n == 0) return out;
    if (check(H5Tis_variable_str(ftype.get()), path, object, "H5Tis_variable_str") > 0) {
        // Files written before fixed-length case ids (read as they always were).
        Handle mtype = vlen_string_type(path, object);
        check(H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get())), path, object, "H5Tset_cset");
        std::vector<char*> p(size_t(n), nullptr);
        check(H5Dread(ds, mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()), path, object, "H5Dread");
        for (int64_t i = 0; i < n; ++i) out[size_t(i)] = p[size_t(i)] ? p[size_t(i)] : "";
        check(H5Dvlen_reclaim(mtype.get(), space, H5P_DEFAULT, p.data()), path, object, "H5Dvlen_reclaim");
        return out;
    }
    const size_t len = H5Tget_size(ftype.get());
    if (len == 0) fail_h5(path, object, "H5Tget_size failed");
    if (len > kMaxCaseIdBytes || uint64_t(len) * uint64_t(n) > kMaxCaseIdTableBytes)
        fail_format(path, object,
                    std::to_string(n) + " strings of " + std::to_string(len) + " bytes exceed the bounds of case ids (" +
                        std::to_string(kMaxCaseIdBytes) + " bytes each; damaged?)");
    std::vector<char> buf(len * size_t(n));
    check(H5Dread(ds, ftype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), path, object, "H5Dread");
    const bool spacepad = H5Tget_strpad(ftype.get()) == H5T_STR_SPACEPAD;
    for (int64_t i = 0; i < n; ++i) {
        const char* p = buf.data() + size_t(i) * len;
        std::string s(p, strnlen(p, len));
        if (spacepad)
            while (!s.empty() && s.back() == ' ') s.pop_back();
        out[size_t(i)] = std::move(s);
    }
    return out;
}

bool g_probing = false;  // true in the child of read_in_child_first only

// Every chunk's place in the file, as its index entry gives it, is looked up as a sample read does
// and must lie inside the file: a damaged entry of a first-wave file (a B-tree without checksums)
// once gave a chunk of 4 GB, which HDF5 then allocated to read one sample. In the child that opens
// a first-wave file first, a damaged index crashes or hangs there, where it ends in one line, and
// not HDF5 during training; the parent then walks the index again and meets the same check. Our
// files hold a whole sample per chunk; another tool's may be chunked more finely (h5py's automatic
// chunks are at most 1 MiB), and then every chunk of every sample is looked up, up to
// kMaxCheckedChunks (a B-tree lookup each: a few microseconds).
// A chunk stored without filters must also hold exactly its chunk_bytes: HDF5 copies a whole chunk
// out of what it read, and a shorter one (a damaged entry) was a read past a 722-byte buffer.
constexpr uint64_t kMaxCheckedChunks = uint64_t(1) << 22;

void check_chunk_index(hid_t ds, const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk,
                       uint64_t chunk_bytes, int filters, uint64_t file_size, const std::string& path,
                       const std::string& object) {
    uint64_t chunks = 1;
    for (size_t k = 0; k < dims.size(); ++k) {
        chunks *= (dims[k] + chunk[k] - 1) / chunk[k];  // chunk[k] in [1, dims[k]]: checked by the caller
        if (chunks > kMaxCheckedChunks)
            fail_format(path, object,
                        "chunk shape " + dims_string(chunk) + " cuts the shape " + dims_string(dims) +
                            " into more than " + std::to_string(kMaxCheckedChunks) +
                            " chunks, more than this reader checks (re-create the dataset with unet_prepare)");
    }
    const unsigned all_skipped = filters >= 32 ? ~0u : (1u << filters) - 1;
    const auto where = [&](const std::vector<hsize_t>& offset) {
        bool whole_sample = true;  // the chunk starts a sample: named by the sample alone
        for (size_t k = 1; k < offset.size(); ++k) whole_sample = whole_sample && offset[k] == 0;
        return "the chunk of sample " + std::to_string(offset[0]) + (whole_sample ? "" : " at " + dims_string(offset));
    };
    std::vector<hsize_t> offset(dims.size(), 0);
    for (bool more = chunks > 0; more;) {
        unsigned filter_mask = 0;
        haddr_t address = HADDR_UNDEF;
        hsize_t bytes = 0;
        // A failed lookup (a damaged index) is met again, as an HDF5 error, by the read of that chunk.
        if (H5Dget_chunk_info_by_coord(ds, offset.data(), &filter_mask, &address, &bytes) >= 0 &&
            address != HADDR_UNDEF) {  // (an unwritten chunk reads as the fill value)
            if (address > file_size || bytes > file_size - address)
                fail_format(path, object,
                            where(offset) + " claims " + std::to_string(bytes) + " bytes at offset " +
                                std::to_string(address) + ", past the end of the file (" + std::to_string(file_size) +
                                " bytes; damaged?)");
            const bool unfiltered = filters == 0 || (filter_mask & all_skipped) == all_skipped;
            if (unfiltered && bytes != chunk_bytes)
                fail_format(path, object,
                            where(offset) + " is stored in " + std::to_string(bytes) +
                                " bytes without compression, where a chunk holds " + std::to_string(chunk_bytes) +
                                " (damaged?)");
        }
        // The next chunk's offset, the last axis fastest.
        more = false;
        for (size_t k = dims.size(); k-- > 0 && !more;) {
            offset[k] += chunk[k];
            more = offset[k] < dims[k];
            if (!more) offset[k] = 0;
        }
    }
}

}  // namespace

struct DatasetReader::Impl {
    std::string path;
    uint64_t file_size = 0;
    DatasetAttributes attrs;
    std::vector<int64_t> spatial;
    int64_t voxels = 0;
    Handle file;  // declared first: destroyed after every dataset
    Handle image_mem, mask_mem;
    std::map<std::string, SplitIn> splits;
    mutable std::mutex mu;
    mutable std::vector<uint8_t> mask_buf;
    uint8_t max_label = 1;
    mutable std::vector<hsize_t> start, image_count, mask_count;

    const SplitIn& split(const std::string& name, int64_t index) const {
        auto it = splits.find(name);
        if (it == splits.end()) {
            std::string have;
            for (const auto& kv : splits) have += (have.empty() ? "" : ", ") + kv.first;
            fail_format(path, "/" + name, "no such split (the file has: " + (have.empty() ? "none" : have) + ")");
        }
        if (index < 0 || index >= it->second.count)
            fail_format(path, "/" + name,
                        "sample index " + std::to_string(index) + " outside [0, " + std::to_string(it->second.count) +
                            ")");
        return it->second;
    }

    // Opens /<name>/{images,masks,case_ids}, checks dtypes and shapes, and sets a chunk cache that
    // holds one whole sample so a chunk is read and inflated once per read_sample.
    void open_split(const std::string& name) {
        const std::string gname = "/" + name;
        const int channels = attrs.channels;
        const size_t rank = 2 + spatial_rank();
        Handle group = checked(H5Gopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Gclose, path, gname, "H5Gopen2");

        auto open = [&](const char* dname, Handle& ds, Handle& space, std::vector<hsize_t>& dims, H5T_class_t cls,
                        size_t size, const char* what) {
            const std::string object = gname + "/" + dname;
            const htri_t exists = check(H5Lexists(group.get(), dname, H5P_DEFAULT), path, object, "H5Lexists");
            if (!exists) fail_format(path, object, "missing");
            ds = checked(H5Dopen2(group.get(), dname, H5P_DEFAULT), H5Dclose, path, object, "H5Dopen2");
            Handle type = checked(H5Dget_type(ds.get()), H5Tclose, path, object, "H5Dget_type");
            const H5T_class_t c = check(H5Tget_class(type.get()), path, object, "H5Tget_class");
            bool ok = c == cls && (size == 0 || H5Tget_size(type.get()) == size);
            if (ok && cls == H5T_INTEGER) ok = H5Tget_sign(type.get()) == H5T_SGN_NONE;
            if (!ok) fail_format(path, object, "is " + type_name(type.get()) + ", expected " + what);
            space = checked(H5Dget_space(ds.get()), H5Sclose, path, object, "H5Dget_space");
            dims = space_dims(space.get(), path, object);
        };

        SplitIn s;
        std::vector<hsize_t> idims, mdims, cdims;
        Handle case_ds, case_space;
        open("images", s.images, s.image_space, idims, H5T_FLOAT, 4, "float32");
        open("masks", s.masks, s.mask_space, mdims, H5T_INTEGER, 1, "uint8");
        open("case_ids", case_ds, case_space, cdims, H5T_STRING, 0, "strings");

        const char* layout = rank == 5 ? "[N, C, D, H, W]" : "[N, C, H, W]";
        if (idims.size() != rank)
            fail_format(path, gname + "/images",
                        "shape " + dims_string(idims) + " does not match layout " + attrs_layout() + " " + layout);
        if (idims[1] != hsize_t(channels))
            fail_format(path, gname + "/images",
                        "shape " + dims_string(idims) + " has " + std::to_string(idims[1]) +
                            " channels, attribute channels is " + std::to_string(channels));
        // Sizes from the file, bounded before they size a buffer or an index: every sample is
        // stored (at least a byte of it), and one sample is one HDF5 chunk (under 4 GiB).
        if (idims[0] > kMaxSamples || idims[0] > file_size)
            fail_format(path, gname + "/images",
                        "shape " + dims_string(idims) + " claims more samples than the file's " +
                            std::to_string(file_size) + " bytes can hold (damaged?)");
        std::vector<int64_t> sp(idims.begin() + 2, idims.end());
        uint64_t sample_bytes = 4 * uint64_t(channels);
        for (int64_t d : sp) {
            if (d <= 0) fail_format(path, gname + "/images", "empty spatial size in shape " + dims_string(idims));
            if (uint64_t(d) > kMaxSpatialSize)
                fail_format(path, gname + "/images",
                            "shape " + dims_string(idims) + " has a spatial size above " +
                                std::to_string(kMaxSpatialSize) + " (damaged?)");
            sample_bytes *= uint64_t(d);  // at most 2^20 channels * (2^16)^3: no overflow
        }
        if (sample_bytes >= kMaxSampleBytes)
            fail_format(path, gname + "/images",
                        "shape " + dims_string(idims) + ": one sample exceeds 4 GiB (damaged?)");
        if (spatial.empty()) {
            spatial = sp;
            voxels = product(sp);
        } else if (sp != spatial) {
            fail_format(path, gname + "/images",
                        "spatial shape " + dims_string(idims) + " differs from the other splits");
        }
        std::vector<hsize_t> want_m = idims;
        want_m[1] = 1;
        if (mdims != want_m)
            fail_format(path, gname + "/masks",
                        "shape " + dims_string(mdims) + " does not match images (expected " + dims_string(want_m) + ")");
        if (cdims.size() != 1 || cdims[0] != idims[0])
            fail_format(path, gname + "/case_ids",
                        "shape " + dims_string(cdims) + " does not match " + std::to_string(idims[0]) + " samples");
        s.count = int64_t(idims[0]);
        s.case_ids = read_strings(case_ds.get(), case_space.get(), s.count, path, gname + "/case_ids");

        // The default chunk cache is 1 MiB: a 3D sample's chunk would not fit and be inflated into
        // a temporary buffer on every read. Reopen with a cache sized for one sample (or one chunk,
        // if some other tool chunked the file more coarsely).
        auto reopen = [&](const char* dname, Handle& ds, const std::vector<hsize_t>& dims, size_t elem_bytes,
                          int64_t sample_elems) {
            const std::string object = gname + "/" + dname;
            Handle dcpl = checked(H5Dget_create_plist(ds.get()), H5Pclose, path, object, "H5Dget_create_plist");
            size_t bytes = size_t(sample_elems) * elem_bytes;
            std::vector<hsize_t> chunk;
            uint64_t chunk_bytes = elem_bytes;  // elem_bytes is the file's type size (checked at open)
            if (check(H5Pget_layout(dcpl.get()), path, object, "H5Pget_layout") == H5D_CHUNKED) {
                chunk.resize(rank);
                const int crank = check(H5Pget_chunk(dcpl.get(), int(rank), chunk.data()), path, object, "H5Pget_chunk");
                // The chunk shape sizes the cache: within the dataset's shape (HDF5 requires it of
                // fixed-size datasets) and under HDF5's 4 GiB chunk limit, or the file is damaged.
                bool ok = size_t(crank) == rank;
                for (size_t i = 0; ok && i < rank; ++i) {
                    ok = chunk[i] >= 1 && chunk[i] <= std::max<hsize_t>(dims[i], 1);
                    chunk_bytes *= uint64_t(chunk[i]);
                    ok = ok && chunk_bytes < kMaxSampleBytes;
                }
                if (!ok)
                    fail_format(path, object,
                                "chunk shape " + dims_string(chunk) + " (rank " + std::to_string(crank) +
                                    ") does not fit the shape " + dims_string(dims) + " (damaged?)");
                bytes = std::max(bytes, size_t(chunk_bytes));
            }
            Handle dapl = checked(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose, path, object, "H5Pcreate");
            // A few slots (prime) and w0 = 1: a fully read chunk is the first to go.
            check(H5Pset_chunk_cache(dapl.get(), 127, bytes + (bytes >> 4) + 4096, 1.0), path, object,
                  "H5Pset_chunk_cache");
            check(ds.close(), path, object, "H5Dclose");
            ds = checked(H5Dopen2(group.get(), dname, dapl.get()), H5Dclose, path, object, "H5Dopen2");
            if (!chunk.empty()) {
                const int filters = check(H5Pget_nfilters(dcpl.get()), path, object, "H5Pget_nfilters");
                check_chunk_index(ds.get(), dims, chunk, chunk_bytes, filters, file_size, path, object);
            }
        };
        reopen("images", s.images, idims, 4, int64_t(channels) * voxels);
        reopen("masks", s.masks, mdims, 1, voxels);
        splits[name] = std::move(s);
    }

    size_t spatial_rank() const { return attrs.mode == "3d" ? 3 : 2; }
    std::string attrs_layout() const { return attrs.mode == "3d" ? "NCDHW" : "NCHW"; }
};

DatasetReader::DatasetReader(const std::string& path) : impl_(new Impl) {
    Impl& m = *impl_;
    m.path = path;
    silence_hdf5_errors(path);
    const std::string expect = "expected a unet dataset with format_version 1 or " + std::to_string(kDatasetFormatVersion);

    m.file_size = file_bytes(path);
    const htri_t is_h5 = H5Fis_hdf5(path.c_str());
    if (is_h5 == 0) fail_format(path, "file", "not an HDF5 file (" + expect + ")");
    if (is_h5 < 0) fail_h5(path, "file", "cannot open as HDF5 (" + expect + ")");
    // A first-wave dataset has no checksums (and its case ids are variable-length strings in the
    // global heap, where damage crashed HDF5): its metadata and chunk index are opened in a child
    // first, so that a crash of the library ends in one line. The samples' bytes are read in
    // process (a damaged sample gives an HDF5 error or wrong values: no checksum to say which).
    if (!g_probing && unchecksummed_hdf5(path))
        read_in_child_first(path, [&] {
            g_probing = true;
            const DatasetReader probe(path);
        });
    Handle fapl = file_access_plist(path);
    const hid_t fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
    if (fid < 0) {
        const std::string cause = hdf5_cause();
        fail_format(path, "file", "cannot open as HDF5" + (cause.empty() ? "" : " (" + cause + ")") + "; " + expect);
    }
    m.file = Handle(fid, H5Fclose);
    const hid_t root = m.file.get();

    if (!has_attr(root, "format_version", path))
        fail_format(path, "/", "not a unet dataset: no root attribute format_version (" + expect + ")");
    const int64_t version = read_int_attr(root, "format_version", path, "attribute format_version");
    if (version != 1 && version != kDatasetFormatVersion)
        fail_format(path, "/",
                    "dataset format_version " + std::to_string(version) + ", this build reads format_version 1 and " +
                        std::to_string(kDatasetFormatVersion) + " (re-create it with this build's unet_prepare)");
    for (const char* required : {"mode", "layout", "channels"})
        if (!has_attr(root, required, path))
            fail_format(path, "/", std::string("missing root attribute ") + required);

    DatasetAttributes& a = m.attrs;
    a.mode = read_string_attr(root, "mode", path);
    if (a.mode != "3d" && a.mode != "2d") fail_format(path, "attribute mode", "'" + a.mode + "' is neither 3d nor 2d");
    const std::string layout = read_string_attr(root, "layout", path);
    if (layout != m.attrs_layout())
        fail_format(path, "attribute layout",
                    "'" + layout + "' does not match mode " + a.mode + " (expected " + m.attrs_layout() + ")");
    const int64_t channels = read_int_attr(root, "channels", path, "attribute channels");
    if (channels <= 0 || channels > (1 << 20))
        fail_format(path, "attribute channels", std::to_string(channels) + " is not a valid channel count");
    a.channels = int(channels);
    // Descriptive attributes: empty when absent (another tool may have left them out).
    a.normalization = has_attr(root, "normalization", path) ? read_string_attr(root, "normalization", path) : "";
    a.crop = has_attr(root, "crop", path) ? read_string_attr(root, "crop", path) : "";
    a.split_seed = has_attr(root, "split_seed", path) ? read_int_attr(root, "split_seed", path, "attribute split_seed") : 0;
    a.source = has_attr(root, "source", path) ? read_string_attr(root, "source", path) : "";
    a.labels = has_attr(root, "labels", path) ? read_string_attr(root, "labels", path) : "";
    // Version 1 masks are binary; version 2 says what its masks hold.
    a.mask_labels = kMaskLabelsBinary;
    if (version >= 2) {
        if (!has_attr(root, "mask_labels", path)) fail_format(path, "/", "missing root attribute mask_labels");
        a.mask_labels = read_string_attr(root, "mask_labels", path);
        if (a.mask_labels != kMaskLabelsMsd && a.mask_labels != kMaskLabelsBinary)
            fail_format(path, "attribute mask_labels", "'" + a.mask_labels + "' is neither msd nor binary");
    }
    m.max_label = uint8_t(max_mask_label(a.mask_labels));

    for (const char* name : kSplitNames)
        if (check(H5Lexists(root, name, H5P_DEFAULT), path, std::string("/") + name, "H5Lexists") > 0)
            m.open_split(name);

    if (!m.spatial.empty()) {
        const size_t rank = 2 + m.spatial.size();
        m.start.assign(rank, 0);
        m.image_count.assign(rank, 1);
        m.image_count[1] = hsize_t(a.channels);
        m.mask_count.assign(rank, 1);
        for (size_t i = 0; i < m.spatial.size(); ++i) m.image_count[2 + i] = m.mask_count[2 + i] = hsize_t(m.spatial[i]);
        m.image_mem = checked(H5Screate_simple(int(rank), m.image_count.data(), nullptr), H5Sclose, path, "memory",
                              "H5Screate_simple");
        m.mask_mem = checked(H5Screate_simple(int(rank), m.mask_count.data(), nullptr), H5Sclose, path, "memory",
                             "H5Screate_simple");
        m.mask_buf.resize(size_t(m.voxels));
    }
}

DatasetReader::~DatasetReader() = default;

const std::string& DatasetReader::path() const { return impl_->path; }
const DatasetAttributes& DatasetReader::attributes() const { return impl_->attrs; }
const std::vector<int64_t>& DatasetReader::spatial() const { return impl_->spatial; }
int DatasetReader::channels() const { return impl_->attrs.channels; }
bool DatasetReader::has_split(const std::string& split) const { return impl_->splits.count(split) > 0; }

int64_t DatasetReader::count(const std::string& split) const {
    auto it = impl_->splits.find(split);
    return it == impl_->splits.end() ? 0 : it->second.count;
}

void DatasetReader::read_labels(const std::string& split, int64_t index, float* image, uint8_t* labels) const {
    const Impl& m = *impl_;
    const SplitIn& s = m.split(split, index);
    if (!image || !labels) fail_format(m.path, "/" + split, "read_sample with a null image or mask buffer");
    std::lock_guard<std::mutex> lock(m.mu);
    silence_hdf5_errors(m.path);
    const std::string& p = m.path;
    m.start[0] = hsize_t(index);
    // A chunk whose Fletcher32 checksum fails (damaged on disk) ends here, naming the sample.
    const std::string sample = " sample " + std::to_string(index);
    check(H5Sselect_hyperslab(s.image_space.get(), H5S_SELECT_SET, m.start.data(), nullptr, m.image_count.data(),
                              nullptr),
          p, "/" + split + "/images" + sample, "H5Sselect_hyperslab");
    check(H5Dread(s.images.get(), H5T_NATIVE_FLOAT, m.image_mem.get(), s.image_space.get(), H5P_DEFAULT, image), p,
          "/" + split + "/images" + sample, "H5Dread");
    check(H5Sselect_hyperslab(s.mask_space.get(), H5S_SELECT_SET, m.start.data(), nullptr, m.mask_count.data(),
                              nullptr),
          p, "/" + split + "/masks" + sample, "H5Sselect_hyperslab");
    check(H5Dread(s.masks.get(), H5T_NATIVE_UINT8, m.mask_mem.get(), s.mask_space.get(), H5P_DEFAULT, labels), p,
          "/" + split + "/masks" + sample, "H5Dread");
    const uint8_t top = *std::max_element(labels, labels + m.voxels);
    if (top > m.max_label)
        fail_format(p, "/" + split + "/masks",
                    "sample " + std::to_string(index) + " has mask value " + std::to_string(int(top)) + " (" +
                        m.attrs.mask_labels + " masks hold 0-" + std::to_string(int(m.max_label)) + ")");
}

void DatasetReader::read_sample(const std::string& split, int64_t index, float* image, float* masks,
                                const Regions& regions) const {
    check_regions(regions);
    if (!masks) fail_format(impl_->path, "/" + split, "read_sample with a null image or mask buffer");
    // Label map -> region masks here: HDF5's own uint8 -> float conversion is several times slower.
    std::vector<uint8_t> labels(size_t(impl_->voxels));  // per call: several threads may read at once
    read_labels(split, index, image, labels.data());
    region_masks(labels.data(), impl_->voxels, regions, masks);
}

void DatasetReader::check_regions(const Regions& regions) const {
    if (impl_->attrs.mask_labels == kMaskLabelsBinary && !is_whole_tumour_only(regions))
        throw UsageError("--labels " + regions_text(regions) + ": " + impl_->path +
                         " has binary tumour masks (format version 1 or Intel's .npy data), which tell the whole "
                         "tumour only; prepare the MSD source again with this build's unet_prepare for tc and et");
}

int max_mask_label(const std::string& mask_labels) { return mask_labels == kMaskLabelsMsd ? kMaxLabel : 1; }

int64_t DatasetReader::sample_cache_bytes() const {
    const int64_t voxels = product(spatial());
    return (4 * int64_t(channels()) + 1) * voxels;
}

std::string DatasetReader::case_id(const std::string& split, int64_t index) const {
    return impl_->split(split, index).case_ids[size_t(index)];
}

}  // namespace unet
