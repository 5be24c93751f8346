#include "unet/data/nifti.h"

#include <nifti1_io.h>  // NIfTI-1 header reader (niftiio) and znzlib; never together with nifti2_io.h
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "nifti_common.h"

namespace unet {

using namespace nifti_detail;

namespace {

const char* datatype_name(int dt) {
    switch (dt) {
        case DT_BINARY: return "binary";
        case DT_UINT8: return "uint8";
        case DT_INT16: return "int16";
        case DT_INT32: return "int32";
        case DT_FLOAT32: return "float32";
        case DT_COMPLEX64: return "complex64";
        case DT_FLOAT64: return "float64";
        case DT_RGB24: return "rgb24";
        case DT_INT8: return "int8";
        case DT_UINT16: return "uint16";
        case DT_UINT32: return "uint32";
        case DT_INT64: return "int64";
        case DT_UINT64: return "uint64";
        case DT_FLOAT128: return "float128";
        case DT_COMPLEX128: return "complex128";
        case DT_COMPLEX256: return "complex256";
        case DT_RGBA32: return "rgba32";
        default: return "unknown";
    }
}

// Bytes per voxel of the datatypes we convert; 0 for the others.
int supported_size(int dt) {
    switch (dt) {
        case DT_UINT8: case DT_INT8: return 1;
        case DT_INT16: case DT_UINT16: return 2;
        case DT_INT32: case DT_UINT32: case DT_FLOAT32: return 4;
        case DT_INT64: case DT_UINT64: case DT_FLOAT64: return 8;
        default: return 0;
    }
}

template <typename T>
T load(const unsigned char* p, bool swap) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    if (swap) bswap_inplace(v);
    return v;
}

template <typename T>
void convert_typed(const void* src, size_t n, bool swap, bool scale, double slope, double inter, float* dst) {
    const unsigned char* s = static_cast<const unsigned char*>(src);
#pragma omp parallel for schedule(static) if (n > (1u << 18))
    for (int64_t i = 0; i < int64_t(n); ++i) {
        const T v = load<T>(s + size_t(i) * sizeof(T), swap);
        dst[i] = scale ? float(slope * double(v) + inter) : float(v);
    }
}

void convert(int dt, const void* src, size_t n, bool swap, double slope, double inter, float* dst) {
    // NIfTI: scl_slope == 0 (or not finite) means "no scaling"; (1, 0) is the identity.
    const bool scale = std::isfinite(slope) && slope != 0.0 && std::isfinite(inter) && !(slope == 1.0 && inter == 0.0);
    switch (dt) {
        case DT_UINT8: convert_typed<uint8_t>(src, n, swap, scale, slope, inter, dst); break;
        case DT_INT8: convert_typed<int8_t>(src, n, swap, scale, slope, inter, dst); break;
        case DT_INT16: convert_typed<int16_t>(src, n, swap, scale, slope, inter, dst); break;
        case DT_UINT16: convert_typed<uint16_t>(src, n, swap, scale, slope, inter, dst); break;
        case DT_INT32: convert_typed<int32_t>(src, n, swap, scale, slope, inter, dst); break;
        case DT_UINT32: convert_typed<uint32_t>(src, n, swap, scale, slope, inter, dst); break;
        case DT_INT64: convert_typed<int64_t>(src, n, swap, scale, slope, inter, dst); break;
        case DT_UINT64: convert_typed<uint64_t>(src, n, swap, scale, slope, inter, dst); break;
        case DT_FLOAT32: convert_typed<float>(src, n, swap, scale, slope, inter, dst); break;
        case DT_FLOAT64: convert_typed<double>(src, n, swap, scale, slope, inter, dst); break;
        default: break;  // rejected before
    }
}

// What the first bytes of the file say, decoded by us so that every error names the cause.
struct HeaderInfo {
    int version = 1;  // 1 or 2
    bool swap = false;
    int datatype = 0;
    int64_t dim[8] = {0};
    int64_t vox_offset = 0;
    double slope = 0, inter = 0;
    double pixdim[8] = {0};
    int xyzt_units = 0;
};



// Reads a .nii byte stream, decompressing gzip with zlib's inflate. Not gzread: it reports a
// file cut inside the gzip trailer as a clean end of file once every data byte has been
// delivered. inflate returns Z_STREAM_END only after checking the CRC and length, so finish()
// proves the file complete. Plain (uncompressed) content is read as is, whatever the name.
class ByteReader {
   public:
    explicit ByteReader(const std::string& path) : path_(path), in_(size_t(1) << 18) {
        f_ = std::fopen(path.c_str(), "rb");
        if (!f_) fail(path, "cannot open for reading");
        fill();
        gzip_ = zs_.avail_in >= 2 && in_[0] == 0x1f && in_[1] == 0x8b;
        if (gzip_ && inflateInit2(&zs_, 15 + 16) != Z_OK) fail(path, "zlib initialisation failed");
    }
    ~ByteReader() {
        if (gzip_) inflateEnd(&zs_);
        if (f_) std::fclose(f_);
    }
    ByteReader(const ByteReader&) = delete;
    ByteReader& operator=(const ByteReader&) = delete;

    // Reads up to n bytes; fewer only at the end of the content.
    size_t read(void* dst, size_t n) {
        unsigned char* out = static_cast<unsigned char*>(dst);
        size_t done = 0;
        if (!gzip_) {
            while (done < n) {
                if (zs_.avail_in == 0 && !fill()) break;
                const size_t k = std::min<size_t>(n - done, zs_.avail_in);
                std::memcpy(out + done, zs_.next_in, k);
                zs_.next_in += k;
                zs_.avail_in -= unsigned(k);
                done += k;
            }
            return done;
        }
        while (done < n) {
            if (stream_end_ && !next_member()) break;
            if (zs_.avail_in == 0) fill();  // at the end of the file inflate may still hold output
            const size_t k = std::min<size_t>(n - done, size_t(1) << 30);
            zs_.next_out = out + done;
            zs_.avail_out = unsigned(k);
            const int rc = inflate(&zs_, Z_NO_FLUSH);
            const size_t produced = k - zs_.avail_out;
            done += produced;
            if (rc == Z_STREAM_END) {
                stream_end_ = true;
            } else if (rc == Z_OK || rc == Z_BUF_ERROR) {
                // No progress and no input left: the file ends inside the stream (truncated).
                if (produced == 0 && zs_.avail_in == 0 && eof_) break;
            } else {
                fail(path_, std::string("corrupt compressed data (") + (zs_.msg ? zs_.msg : "zlib error") + ")");
            }
        }
        return done;
    }
    void skip(int64_t n) {
        unsigned char junk[4096];
        while (n > 0) {
            const size_t want = size_t(std::min<int64_t>(n, int64_t(sizeof(junk))));
            if (read(junk, want) != want) fail(path_, "truncated before the data offset");
            n -= int64_t(want);
        }
    }
    // Runs the gzip stream to its end (trailing bytes after the data are allowed) so that zlib
    // verifies the CRC and length trailer.
    void finish() {
        if (!gzip_) return;
        unsigned char junk[4096];
        while (read(junk, sizeof(junk)) == sizeof(junk)) {
        }
        if (!stream_end_) fail(path_, "truncated: the compressed stream ends before its gzip trailer");
    }

   private:
    bool fill() {
        if (eof_) return false;
        const size_t got = std::fread(in_.data(), 1, in_.size(), f_);
        if (got < in_.size()) {
            if (std::ferror(f_)) fail(path_, "read error");
            eof_ = true;
        }
        zs_.next_in = in_.data();
        zs_.avail_in = unsigned(got);
        return got > 0;
    }
    // Concatenated gzip members form one stream (gzip -c a b); anything else after the last
    // member is ignored, as gzip does.
    bool next_member() {
        if (zs_.avail_in == 0 && !fill()) return false;
        if (zs_.avail_in < 2 || zs_.next_in[0] != 0x1f || zs_.next_in[1] != 0x8b) return false;
        if (inflateReset(&zs_) != Z_OK) fail(path_, "zlib reset failed");
        stream_end_ = false;
        return true;
    }

    std::string path_;
    std::FILE* f_ = nullptr;
    std::vector<unsigned char> in_;
    z_stream zs_{};
    bool gzip_ = false, eof_ = false, stream_end_ = false;
};

bool file_starts_with_gzip_magic(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    unsigned char b[2] = {0, 0};
    const size_t got = std::fread(b, 1, 2, f);
    std::fclose(f);
    return got == 2 && b[0] == 0x1f && b[1] == 0x8b;
}

// Decodes the fixed header fields we need from the first bytes (NIfTI-1: 348, NIfTI-2: 540).
HeaderInfo decode_header(const std::string& path, const unsigned char* raw, size_t got) {
    if (got < kNifti1HeaderSize)
        fail(path, "truncated or not NIfTI: " + std::to_string(got) + " bytes, a NIfTI-1 header needs 348");
    HeaderInfo h;
    const int32_t size_native = load<int32_t>(raw, false);
    const int32_t size_swapped = load<int32_t>(raw, true);
    if (size_native == int32_t(kNifti1HeaderSize) || size_swapped == int32_t(kNifti1HeaderSize)) {
        h.version = 1;
        h.swap = size_native != int32_t(kNifti1HeaderSize);
        const char* magic = reinterpret_cast<const char*>(raw + 344);
        if (std::memcmp(magic, "ni1\0", 4) == 0)
            fail(path, "two-file NIfTI (.hdr/.img) is not supported; expected a single .nii or .nii.gz");
        if (std::memcmp(magic, "n+1\0", 4) != 0)
            fail(path, "not NIfTI-1 (no 'n+1' magic; ANALYZE 7.5 is not supported)");
        h.dim[0] = load<int16_t>(raw + 40, h.swap);
        for (int i = 1; i < 8; ++i) h.dim[i] = load<int16_t>(raw + 40 + 2 * i, h.swap);
        h.datatype = load<int16_t>(raw + 70, h.swap);
        const float vox_offset = load<float>(raw + 108, h.swap);
        if (!(vox_offset >= 0.f && vox_offset < 1e12f)) fail(path, "invalid vox_offset " + std::to_string(vox_offset));
        h.vox_offset = int64_t(vox_offset);
        h.slope = load<float>(raw + 112, h.swap);
        h.inter = load<float>(raw + 116, h.swap);
        for (int i = 0; i < 8; ++i) h.pixdim[i] = load<float>(raw + 76 + 4 * i, h.swap);
        h.xyzt_units = raw[123];
        if (h.vox_offset < int64_t(kNifti1HeaderSize)) h.vox_offset = int64_t(kNifti1HeaderSize);
    } else if (size_native == int32_t(kNifti2HeaderSize) || size_swapped == int32_t(kNifti2HeaderSize)) {
        if (got < kNifti2HeaderSize)
            fail(path, "truncated: " + std::to_string(got) + " bytes, a NIfTI-2 header needs 540");
        h.version = 2;
        h.swap = size_native != int32_t(kNifti2HeaderSize);
        if (std::memcmp(raw + 4, "n+2\0", 4) != 0) fail(path, "not a single-file NIfTI-2 (no 'n+2' magic)");
        h.datatype = load<int16_t>(raw + 12, h.swap);
        for (int i = 0; i < 8; ++i) h.dim[i] = load<int64_t>(raw + 16 + 8 * i, h.swap);
        h.vox_offset = load<int64_t>(raw + 168, h.swap);
        h.slope = load<double>(raw + 176, h.swap);
        h.inter = load<double>(raw + 184, h.swap);
        for (int i = 0; i < 8; ++i) h.pixdim[i] = load<double>(raw + 104 + 8 * i, h.swap);
        h.xyzt_units = load<int32_t>(raw + 500, h.swap);
        if (h.vox_offset < int64_t(kNifti2HeaderSize)) fail(path, "invalid vox_offset " + std::to_string(h.vox_offset));
    } else {
        fail(path, "not a NIfTI file (header size field is " + std::to_string(size_native) +
                       ", expected 348 for NIfTI-1 or 540 for NIfTI-2)");
    }
    return h;
}

// Checks dimensions and returns the voxel count; fills C, D, H, W.
int64_t check_dims(const std::string& path, const HeaderInfo& h, int64_t& c, int64_t& d, int64_t& hh, int64_t& w) {
    const int64_t nd = h.dim[0];
    if (nd < 1 || nd > 7) fail(path, "invalid dimension count dim[0] = " + std::to_string(nd));
    for (int i = 1; i <= nd; ++i)
        if (h.dim[i] < 1) fail(path, "invalid size " + std::to_string(h.dim[i]) + " on axis " + std::to_string(i));
    for (int i = 5; i <= nd; ++i)
        if (h.dim[i] != 1)
            fail(path, "wrong dimensionality: " + std::to_string(nd) + "-D volume " + dims_string(h.dim) +
                           ", expected 3-D (x, y, z) or 4-D (x, y, z, channels)");
    auto axis = [&](int i) { return i <= nd ? h.dim[i] : int64_t(1); };
    w = axis(1), hh = axis(2), d = axis(3), c = axis(4);
    // Guard against headers that promise absurd sizes (2^32 voxels = 16 GiB of floats).
    const double total = double(w) * double(hh) * double(d) * double(c);
    if (total > double(int64_t(1) << 32)) fail(path, "implausible size " + dims_string(h.dim));
    return w * hh * d * c;
}

// For NIfTI-1 files niftilib parses the header too (it knows every odd corner of the format);
// it must agree with what we decoded. It is not asked for the data: it zero-fills a truncated
// .nii.gz without a word and replaces NaN/Inf floats by 0 (nibabel keeps them).
void cross_check_with_niftilib(const std::string& path, HeaderInfo& h, int64_t n) {
    std::unique_ptr<nifti_image, void (*)(nifti_image*)> nim(nifti_image_read(path.c_str(), 0), nifti_image_free);
    if (!nim) fail(path, "niftilib rejects the header");
    if (nim->datatype != h.datatype || int64_t(nim->nvox) != n)
        fail(path, "niftilib reads the header differently (datatype " + std::to_string(nim->datatype) + ", " +
                       std::to_string(int64_t(nim->nvox)) + " voxels)");
    h.vox_offset = std::max<int64_t>(h.vox_offset, nim->iname_offset);
    h.slope = nim->scl_slope;  // niftilib only reads these; applying them is ours
    h.inter = nim->scl_inter;
}

// A file opened and its header checked (by us and, for NIfTI-1, by niftilib); data not yet read.
struct OpenedNifti {
    std::unique_ptr<ByteReader> in;
    unsigned char raw[kNifti2HeaderSize];
    size_t got = 0;
    HeaderInfo h;
    int bpv = 0;
    int64_t c = 0, d = 0, hh = 0, w = 0, n = 0;
    bool gz = false;
    int64_t file_size = 0;
};

void open_nifti(const std::string& path, OpenedNifti& f) {
    quiet_niftilib();
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) fail(path, "file not found");
    if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
    const bool gz = gzip_name(path);
    if (!gz && file_starts_with_gzip_magic(path))
        fail(path, "is gzip-compressed but named .nii; rename it to .nii.gz");

    f.gz = gz;
    f.file_size = int64_t(st.st_size);
    f.in = std::make_unique<ByteReader>(path);
    f.got = f.in->read(f.raw, kNifti2HeaderSize);
    f.h = decode_header(path, f.raw, f.got);
    f.bpv = supported_size(f.h.datatype);
    if (f.bpv == 0)
        fail(path, std::string("unsupported datatype ") + datatype_name(f.h.datatype) + " (code " +
                       std::to_string(f.h.datatype) + "); expected an integer or float type");
    f.n = check_dims(path, f.h, f.c, f.d, f.hh, f.w);
    if (f.h.version == 1) cross_check_with_niftilib(path, f.h, f.n);
}

NiftiHeader header_of(const OpenedNifti& f) {
    NiftiHeader out;
    out.version = f.h.version;
    out.swap = f.h.swap;
    out.bytes.assign(f.raw, f.raw + (f.h.version == 1 ? kNifti1HeaderSize : kNifti2HeaderSize));
    for (int i = 0; i < 8; ++i) out.dim[i] = f.h.dim[i], out.pixdim[i] = f.h.pixdim[i];
    out.xyzt_units = f.h.xyzt_units;
    return out;
}

}  // namespace

std::string nifti_case_id(const std::string& path) {
    const std::string name = path.substr(path.find_last_of('/') + 1);
    for (const char* ext : {".nii.gz", ".nii"})
        if (ends_with(name, ext)) return name.substr(0, name.size() - std::string(ext).size());
    return name;
}

NiftiHeader read_nifti_header(const std::string& path) {
    OpenedNifti f;
    open_nifti(path, f);
    return header_of(f);
}

Volume read_nifti(const std::string& path, NiftiHeader* header) {
    OpenedNifti f;
    open_nifti(path, f);
    if (header) *header = header_of(f);
    ByteReader& in = *f.in;
    const unsigned char* raw = f.raw;
    const size_t got = f.got;
    const HeaderInfo& h = f.h;
    const int64_t n = f.n, c = f.c, d = f.d, hh = f.hh, w = f.w;
    const int bpv = f.bpv;
    const bool gz = f.gz;
    const int64_t data_bytes = n * bpv;
    const std::string what = std::to_string(data_bytes) + " bytes of " + datatype_name(h.datatype) + " data (" +
                             dims_string(h.dim) + ") at offset " + std::to_string(h.vox_offset);
    // An uncompressed file's size tells whether it is complete before anything is allocated.
    if (!gz && f.file_size < h.vox_offset + data_bytes)
        fail(path, "truncated: the file has " + std::to_string(f.file_size) + " bytes, the header needs " +
                       std::to_string(h.vox_offset + data_bytes) + " (" + what + ")");

    // Data: after the header bytes already read, skip to vox_offset, read, check the stream end.
    std::vector<unsigned char> buf(static_cast<size_t>(data_bytes));
    const int64_t consumed = int64_t(got);
    if (h.vox_offset >= consumed) {
        in.skip(h.vox_offset - consumed);
        const size_t r = in.read(buf.data(), buf.size());
        if (r != buf.size()) fail(path, "truncated: got " + std::to_string(r) + " of " + what);
    } else {
        // The usual NIfTI-1 case: the first data bytes are already in the 540-byte header buffer.
        const size_t pre = size_t(std::min<int64_t>(consumed - h.vox_offset, data_bytes));
        std::memcpy(buf.data(), raw + h.vox_offset, pre);
        const size_t r = in.read(buf.data() + pre, buf.size() - pre);
        if (pre + r != buf.size()) fail(path, "truncated: got " + std::to_string(pre + r) + " of " + what);
    }
    in.finish();

    Volume v;
    v.resize(c, d, hh, w);
    convert(h.datatype, buf.data(), size_t(n), h.swap, h.slope, h.inter, v.data.data());
    return v;
}

double NiftiHeader::spacing_mm(int axis) const {
    const double p = std::fabs(pixdim[axis + 1]);
    if (!(p > 0) || !std::isfinite(p)) return 1.0;
    switch (xyzt_units & 0x07) {
        case NIFTI_UNITS_METER: return p * 1000.0;
        case NIFTI_UNITS_MICRON: return p / 1000.0;
        default: return p;  // mm, or unknown (taken as mm, as nibabel and ITK do)
    }
}

}  // namespace unet
