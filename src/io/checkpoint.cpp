#include "unet/io/hdf5_util.h"
#include "unet/io/checkpoint.h"
#include "unet/io/atomic_file.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <utility>

// File layout (HDF5, the 1.10 object format: HDF5 >= 1.10 reads it, and its superblock, object
// headers, attribute heaps and chunk indexes carry checksums, so damaged metadata is refused by
// HDF5 instead of followed; older checkpoints were in the earliest format, any HDF5 >= 1.8):
//   /                 attribute checkpoint_format (int32) = kCheckpointFormatVersion
//   /arrays/<name>    1-D float32 dataset in equal chunks of at most kChunkFloats values, each
//                     with a Fletcher32 checksum (an empty array: contiguous, no data)
//   /integers         one scalar int64 attribute per entry
//   /strings          one scalar fixed-length UTF-8 string attribute per entry, or, for values
//                     longer than kMaxStringAttributeBytes, a dataset of that name holding one
//                     fixed-length string (chunked, Fletcher32)
// Files written before (earliest object format, contiguous arrays without checksums,
// variable-length strings) read the same.
// <name> is the map key escaped so that any key is a legal, single-component HDF5 name: the bytes
// '%', '/', control characters and DEL become "%XX" (upper-case hex), the key "." becomes "%2E"
// and the empty key becomes "%". Every other byte (UTF-8 included) is kept, so
// "optimizer/exp_avg" is stored as "optimizer%2Fexp_avg" and "enc0.conv1.weight" unchanged.
//
// Writing: HDF5 builds the file in memory (see memory_file_plist); the image is then written to
// "<path>.tmp" with write(), fsynced, renamed over <path>, and the directory is fsynced. Any
// failure removes the .tmp (when this call created it) and leaves <path> untouched. Peak memory
// is the checkpoint plus two copies of the file image (HDF5's and ours) for a moment.

namespace unet {

namespace {

// Longer string values go to a dataset. HDF5 limits an object header message (an attribute, with
// its fixed-length string inline) to 64 KiB; a dataset has no limit under any HDF5 version.
constexpr size_t kMaxStringAttributeBytes = 60 * 1024;
// One chunk of an array: 1 MiB, each with its own checksum, so a damaged block is found without
// making a 31 MB array one checksum.
constexpr hsize_t kChunkFloats = hsize_t(1) << 18;

const char* const kFormatAttr = "checkpoint_format";
const char* const kArrays = "arrays";
const char* const kIntegers = "integers";
const char* const kStrings = "strings";

// ------------------------------------------------------------------------------------------------
// Names

bool must_escape(unsigned char c) { return c == '%' || c == '/' || c < 0x20 || c == 0x7f; }

std::string escape_name(const std::string& key) {
    if (key.empty()) return "%";
    if (key == ".") return "%2E";
    static const char hex[] = "0123456789ABCDEF";
    std::string s;
    s.reserve(key.size());
    for (char ch : key) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (must_escape(c)) {
            s += '%';
            s += hex[c >> 4];
            s += hex[c & 15];
        } else {
            s += ch;
        }
    }
    return s;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The key for an HDF5 name written by escape_name; false for any name escape_name cannot produce
// (so two names in one file can never decode to the same key).
bool unescape_name(const std::string& name, std::string& key) {
    if (name == "%") {
        key.clear();
        return true;
    }
    key.clear();
    for (size_t i = 0; i < name.size(); ++i) {
        if (name[i] != '%') {
            key += name[i];
            continue;
        }
        if (i + 2 >= name.size()) return false;
        const int hi = hex_value(name[i + 1]), lo = hex_value(name[i + 2]);
        if (hi < 0 || lo < 0) return false;
        key += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return escape_name(key) == name;
}

// ------------------------------------------------------------------------------------------------
// Writer

void write_string(hid_t group, const std::string& name, const std::string& value, hid_t lcpl, hid_t acpl,
                  const std::string& path, const std::string& object) {
    if (value.size() <= kMaxStringAttributeBytes)
        write_string_attr(group, name, value, path, object, acpl);
    else
        write_string_dataset(group, name, value, lcpl, path, object);
}

void write_contents(hid_t file, const Checkpoint& c, const std::string& path) {
    // Names are stored as UTF-8 (HDF5 keeps the bytes either way; this only labels them).
    Handle lcpl = checked(H5Pcreate(H5P_LINK_CREATE), H5Pclose, path, "link create", "H5Pcreate");
    check(H5Pset_char_encoding(lcpl.get(), H5T_CSET_UTF8), path, "link create", "H5Pset_char_encoding");
    Handle acpl = checked(H5Pcreate(H5P_ATTRIBUTE_CREATE), H5Pclose, path, "attribute create", "H5Pcreate");
    check(H5Pset_char_encoding(acpl.get(), H5T_CSET_UTF8), path, "attribute create", "H5Pset_char_encoding");

    write_int_attr(file, kFormatAttr, kCheckpointFormatVersion, H5T_STD_I32LE, path,
                   std::string("attribute ") + kFormatAttr, acpl.get());

    auto group = [&](const char* name) {
        return checked(H5Gcreate2(file, name, lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose, path,
                       std::string("/") + name, "H5Gcreate2");
    };

    {
        Handle g = group(kArrays);
        for (const auto& kv : c.arrays) {
            const std::string name = escape_name(kv.first);
            const std::string object = "/arrays/" + name;
            const hsize_t n = kv.second.size();
            Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, path, object, "H5Pcreate");
            if (n > 0) {
                // Equal chunks of at most kChunkFloats: a last partial chunk would be stored whole.
                const hsize_t chunks = (n + kChunkFloats - 1) / kChunkFloats;
                const hsize_t chunk = (n + chunks - 1) / chunks;
                check(H5Pset_chunk(dcpl.get(), 1, &chunk), path, object, "H5Pset_chunk");
                add_checksum(dcpl.get(), path, object);
            } else {  // a chunk may not exceed a fixed-size dataset: an empty one has no data to check
                check(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS), path, object, "H5Pset_layout");
            }
            // Never filled: the data are written once, straight from the vector.
            check(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), path, object, "H5Pset_fill_time");
            Handle space = checked(H5Screate_simple(1, &n, nullptr), H5Sclose, path, object, "H5Screate_simple");
            Handle ds = checked(H5Dcreate2(g.get(), name.c_str(), H5T_IEEE_F32LE, space.get(), lcpl.get(),
                                           dcpl.get(), H5P_DEFAULT),
                                H5Dclose, path, object, "H5Dcreate2");
            if (n > 0)
                check(H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, kv.second.data()), path,
                      object, "H5Dwrite");
            check(ds.close(), path, object, "H5Dclose");
        }
        check(g.close(), path, "/arrays", "H5Gclose");
    }
    {
        Handle g = group(kIntegers);
        for (const auto& kv : c.integers) {
            const std::string name = escape_name(kv.first);
            write_int_attr(g.get(), name, kv.second, H5T_STD_I64LE, path, "/integers attribute " + name, acpl.get());
        }
        check(g.close(), path, "/integers", "H5Gclose");
    }
    {
        Handle g = group(kStrings);
        for (const auto& kv : c.strings) {
            const std::string name = escape_name(kv.first);
            write_string(g.get(), name, kv.second, lcpl.get(), acpl.get(), path, "/strings " + name);
        }
        check(g.close(), path, "/strings", "H5Gclose");
    }
}

// The file is built in memory (core driver, no backing store) and written out by write_checkpoint
// itself. HDF5 1.10 must never see a write error on a real file: when H5Fclose cannot flush (disk
// full, quota, EIO) it frees the file but keeps its ID, and the process later crashes in
// H5_term_library at exit (seen with 1.10.8 and RLIMIT_FSIZE; upstream fix HDFGroup/hdf5#2291).
// In memory, HDF5 does no I/O at all and every I/O error is a plain errno here.
Handle memory_file_plist(const std::string& path, size_t increment) {
    Handle fapl = checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, path, "file access", "H5Pcreate");
    check(H5Pset_fapl_core(fapl.get(), increment, false), path, "file access", "H5Pset_fapl_core");
    check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_SEMI), path, "file access", "H5Pset_fclose_degree");
    use_checksummed_format(fapl.get(), path);
    return fapl;
}

// Bob Jenkins' lookup3 hash (hashlittle, initial value 0): HDF5's metadata checksum.
uint32_t metadata_checksum(const unsigned char* k, size_t n) {
    auto rot = [](uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
    auto word = [](const unsigned char* p) {
        return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
    };
    uint32_t a, b, c;
    a = b = c = 0xdeadbeefu + uint32_t(n);
    for (; n > 12; n -= 12, k += 12) {
        a += word(k);
        b += word(k + 4);
        c += word(k + 8);
        a -= c; a ^= rot(c, 4);  c += b;
        b -= a; b ^= rot(a, 6);  a += c;
        c -= b; c ^= rot(b, 8);  b += a;
        a -= c; a ^= rot(c, 16); c += b;
        b -= a; b ^= rot(a, 19); a += c;
        c -= b; c ^= rot(b, 4);  b += a;
    }
    if (n == 0) return c;
    unsigned char tail[12] = {};
    std::memcpy(tail, k, n);
    a += word(tail);
    b += word(tail + 4);
    c += word(tail + 8);
    c ^= b; c -= rot(b, 14);
    a ^= c; a -= rot(c, 11);
    b ^= a; b -= rot(a, 25);
    c ^= b; c -= rot(b, 16);
    a ^= c; a -= rot(c, 4);
    b ^= a; b -= rot(a, 14);
    c ^= b; c -= rot(b, 24);
    return c;
}

// HDF5 before 1.14.7 (HDFGroup/hdf5#1915) clears the superblock's status flags ("open for
// writing") in the image H5Fget_file_image returns but leaves the checksum computed with them
// set, so a version 2 superblock would not verify when the file is opened. Recompute it (a
// library that gets it right leaves nothing to do).
void fix_superblock_checksum(char* image, size_t size) {
    auto* p = reinterpret_cast<unsigned char*>(image);
    static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (size < 12 || std::memcmp(p, signature, 8) != 0 || (p[8] != 2 && p[8] != 3)) return;
    // signature, version, size of offsets, size of lengths, flags, then four addresses
    const size_t at = 12 + 4 * size_t(p[9]);
    if (at + 4 > size) return;
    const uint32_t sum = metadata_checksum(p, at);
    for (int i = 0; i < 4; ++i) p[at + size_t(i)] = static_cast<unsigned char>(sum >> (8 * i));
}

// Enough for the whole file, so the in-memory image is allocated once instead of grown by realloc.
size_t estimated_file_size(const Checkpoint& c) {
    size_t n = 64 * 1024;
    for (const auto& kv : c.arrays) n += 4 * kv.second.size() + 3 * kv.first.size() + 1024;
    for (const auto& kv : c.integers) n += 3 * kv.first.size() + 256;
    for (const auto& kv : c.strings) n += kv.second.size() + 3 * kv.first.size() + 1024;
    return n;
}

}  // namespace

void write_checkpoint(const std::string& path, const Checkpoint& c) {
    const std::string tmp = temporary_path(path);
    silence_hdf5_errors(tmp);
    // HDF5 strings end at the first NUL: refuse what could not be read back exactly.
    for (const auto& kv : c.strings)
        if (kv.second.find('\0') != std::string::npos)
            fail_format(path, "/strings " + escape_name(kv.first), "value contains a NUL byte");

    // 1. Build the whole file in memory and take a copy of its image.
    std::unique_ptr<char[]> image;
    size_t size = 0;
    {
        Handle fapl = memory_file_plist(tmp, estimated_file_size(c));
        // Only a label: H5Fcreate first tries to open the name to see whether the file is already
        // open, which would read a stale "<path>.tmp" into memory (or block on a FIFO).
        const std::string label = tmp + " (in memory)";
        Handle file = checked(H5Fcreate(label.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, tmp,
                              "file", "H5Fcreate");
        write_contents(file.get(), c, tmp);
        check(H5Fflush(file.get(), H5F_SCOPE_LOCAL), tmp, "file", "H5Fflush");
        const ssize_t n = check(H5Fget_file_image(file.get(), nullptr, 0), tmp, "file", "H5Fget_file_image");
        size = size_t(n);
        image.reset(new char[size]);
        if (H5Fget_file_image(file.get(), image.get(), size) != n) fail_h5(tmp, "file", "H5Fget_file_image failed");
        fix_superblock_checksum(image.get(), size);
        if (file.close() < 0) fail_h5(tmp, "file", "H5Fclose failed");
    }

    // 2. Write it to <path>.tmp, fsync, rename over <path>, fsync the directory.
    write_file_atomically(path, image.get(), size);
}

// ------------------------------------------------------------------------------------------------
// Reader

namespace {

struct Names {
    std::vector<std::string> names;
    std::vector<std::string> soft;  // links that are not hard links (not ours)
};

herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* data) {
    try {
        static_cast<Names*>(data)->names.emplace_back(name);
        return 0;
    } catch (...) {
        return -1;
    }
}

herr_t collect_link(hid_t, const char* name, const H5L_info_t* info, void* data) {
    try {
        Names* n = static_cast<Names*>(data);
        (info->type == H5L_TYPE_HARD ? n->names : n->soft).emplace_back(name);
        return 0;
    } catch (...) {
        return -1;
    }
}

std::vector<std::string> attribute_names(hid_t loc, const std::string& path, const std::string& object) {
    Names n;
    hsize_t idx = 0;
    check(H5Aiterate2(loc, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &n), path, object, "H5Aiterate2");
    return n.names;
}

std::vector<std::string> link_names(hid_t group, const std::string& path, const std::string& object) {
    Names n;
    hsize_t idx = 0;
    check(H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link, &n), path, object, "H5Literate");
    if (!n.soft.empty()) fail_format(path, object + "/" + n.soft.front(), "is a soft or external link");
    return n.names;
}

std::string key_of(const std::string& name, const std::string& path, const std::string& object) {
    std::string key;
    if (!unescape_name(name, key)) fail_format(path, object, "is not a name this program writes (bad % escape)");
    return key;
}

template <typename V>
void insert_unique(std::map<std::string, V>& m, std::string key, V value, const std::string& path,
                   const std::string& object) {
    if (!m.emplace(std::move(key), std::move(value)).second) fail_format(path, object, "duplicate entry");
}




Handle open_group(hid_t file, const char* name, const std::string& path) {
    const std::string object = std::string("/") + name;
    if (check(H5Lexists(file, name, H5P_DEFAULT), path, object, "H5Lexists") <= 0)
        fail_format(path, object, "missing group (not a complete checkpoint)");
    Handle g = checked(H5Oopen(file, name, H5P_DEFAULT), H5Oclose, path, object, "H5Oopen");
    if (H5Iget_type(g.get()) != H5I_GROUP) fail_format(path, object, "is not a group");
    return g;
}

// A dataset below group; fails naming it when the link leads to something else.
Handle open_dataset(hid_t group, const std::string& name, const std::string& path, const std::string& object) {
    Handle o = checked(H5Oopen(group, name.c_str(), H5P_DEFAULT), H5Oclose, path, object, "H5Oopen");
    if (H5Iget_type(o.get()) != H5I_DATASET) fail_format(path, object, "is not a dataset");
    return o;
}

// Whether a filter other than Fletcher32 (a compressor, added by h5repack say) may have made the
// dataset's values larger than its stored bytes.
bool maybe_compressed(hid_t ds, const std::string& path, const std::string& object) {
    Handle dcpl = checked(H5Dget_create_plist(ds), H5Pclose, path, object, "H5Dget_create_plist");
    const int n = check(H5Pget_nfilters(dcpl.get()), path, object, "H5Pget_nfilters");
    for (int i = 0; i < n; ++i) {
        unsigned flags = 0, config = 0;
        size_t cd_nelmts = 0;
        const H5Z_filter_t f = H5Pget_filter2(dcpl.get(), unsigned(i), &flags, &cd_nelmts, nullptr, 0, nullptr, &config);
        if (f < 0) fail_h5(path, object, "H5Pget_filter2 failed");
        if (f != H5Z_FILTER_FLETCHER32) return true;
    }
    return false;
}

void read_arrays(hid_t file, Checkpoint& c, const std::string& path, uint64_t file_size) {
    Handle g = open_group(file, kArrays, path);
    for (const std::string& name : link_names(g.get(), path, "/arrays")) {
        const std::string object = "/arrays/" + name;
        std::string key = key_of(name, path, object);
        Handle ds = open_dataset(g.get(), name, path, object);
        Handle type = checked(H5Dget_type(ds.get()), H5Tclose, path, object, "H5Dget_type");
        if (check(H5Tget_class(type.get()), path, object, "H5Tget_class") != H5T_FLOAT || H5Tget_size(type.get()) != 4)
            fail_format(path, object, "is not float32");
        Handle space = checked(H5Dget_space(ds.get()), H5Sclose, path, object, "H5Dget_space");
        const std::vector<hsize_t> dims = space_dims(space.get(), path, object);
        if (dims.size() != 1) fail_format(path, object, "is not one-dimensional");
        // The values are in the file: a length beyond its bytes (times deflate's best ratio, 1032,
        // for a compressed copy) is damage, refused before it sizes the buffer.
        const uint64_t bound = maybe_compressed(ds.get(), path, object) ? file_size * 1032 : file_size;
        if (dims[0] > bound / 4)
            fail_format(path, object,
                        "claims " + std::to_string(dims[0]) + " values, more than the file's " +
                            std::to_string(file_size) + " bytes hold (damaged?)");
        std::vector<float> v(static_cast<size_t>(dims[0]));
        if (!v.empty())
            check(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), path, object,
                  "H5Dread");
        insert_unique(c.arrays, std::move(key), std::move(v), path, object);
    }
}

void read_integers(hid_t file, Checkpoint& c, const std::string& path) {
    Handle g = open_group(file, kIntegers, path);
    if (!link_names(g.get(), path, "/integers").empty())
        fail_format(path, "/integers", "holds objects; integers are attributes of this group");
    for (const std::string& name : attribute_names(g.get(), path, "/integers")) {
        const std::string object = "/integers attribute " + name;
        std::string key = key_of(name, path, object);
        insert_unique(c.integers, std::move(key), read_int_attr(g.get(), name, path, object), path, object);
    }
}

void read_strings(hid_t file, Checkpoint& c, const std::string& path, uint64_t file_size) {
    Handle g = open_group(file, kStrings, path);
    for (const std::string& name : attribute_names(g.get(), path, "/strings")) {
        const std::string object = "/strings attribute " + name;
        std::string key = key_of(name, path, object);
        Handle attr = checked(H5Aopen(g.get(), name.c_str(), H5P_DEFAULT), H5Aclose, path, object, "H5Aopen");
        insert_unique(c.strings, std::move(key), read_string(attr.get(), true, path, object, size_t(file_size)),
                      path, object);
    }
    // Values too long for an attribute.
    for (const std::string& name : link_names(g.get(), path, "/strings")) {
        const std::string object = "/strings/" + name;
        std::string key = key_of(name, path, object);
        Handle ds = open_dataset(g.get(), name, path, object);
        insert_unique(c.strings, std::move(key), read_string(ds.get(), false, path, object, size_t(file_size)),
                      path, object);
    }
}

// A file that is not a checkpoint at all (see WrongCheckpoint), in fail_format's words.
[[noreturn]] void wrong_file(const std::string& path, const std::string& object, const std::string& what) {
    throw WrongCheckpoint(path + ": " + object + ": " + what);
}

// Whether the file starts with HDF5's signature (our files have no user block before it): such a
// file that HDF5 cannot read is a damaged HDF5 file, not some other kind of file.
bool starts_as_hdf5(const std::string& path) {
    static const char signature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
    char head[8] = {};
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    const size_t n = std::fread(head, 1, sizeof head, f);
    std::fclose(f);
    return n == sizeof head && std::memcmp(head, signature, sizeof head) == 0;
}

// Everything after the checks of read_checkpoint: the groups, arrays, integers and strings.
Checkpoint read_contents(const std::string& path, bool arrays, uint64_t file_size, const std::string& expect);

// What the child that reads a first-wave checkpoint hands back (read_in_child): the checkpoint, or
// the error its read ended in, as bytes. HDF5's behaviour on damaged first-wave metadata can depend
// on what its buffers held before (a read of a damaged global heap passed in the child and crashed
// in the parent, which had allocated in between), so the parent takes the child's result instead of
// reading the file again. Tag 'C': three sections (arrays, integers, strings), each a count and its
// entries, every key and value length-prefixed (uint64); 'W' (WrongCheckpoint) or 'E' (any other
// error): the message.
void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
void put_bytes(std::string& out, const void* data, size_t n) {
    put_u64(out, n);
    out.append(static_cast<const char*>(data), n);
}

std::string encode(const Checkpoint& c) {
    std::string out = "C";
    put_u64(out, c.arrays.size());
    for (const auto& kv : c.arrays) {
        put_bytes(out, kv.first.data(), kv.first.size());
        put_bytes(out, kv.second.data(), kv.second.size() * sizeof(float));
    }
    put_u64(out, c.integers.size());
    for (const auto& kv : c.integers) {
        put_bytes(out, kv.first.data(), kv.first.size());
        put_u64(out, uint64_t(kv.second));
    }
    put_u64(out, c.strings.size());
    for (const auto& kv : c.strings) {
        put_bytes(out, kv.first.data(), kv.first.size());
        put_bytes(out, kv.second.data(), kv.second.size());
    }
    return out;
}

// The parent's side: the checkpoint, or the child's error thrown again as it was thrown there.
Checkpoint decode(const std::string& bytes, const std::string& path) {
    size_t at = 1;
    const auto malformed = [&] {
        return std::runtime_error(path + ": file: the child process that read this old file returned " +
                                  std::to_string(bytes.size()) + " bytes that are not a checkpoint");
    };
    const auto u64 = [&] {
        uint64_t v = 0;
        if (bytes.size() - at < sizeof v) throw malformed();
        std::memcpy(&v, bytes.data() + at, sizeof v);
        at += sizeof v;
        return v;
    };
    const auto text = [&] {
        const uint64_t n = u64();
        if (bytes.size() - at < n) throw malformed();
        at += n;
        return bytes.substr(at - n, n);
    };
    if (bytes.empty()) throw malformed();
    if (bytes[0] == 'W') throw WrongCheckpoint(bytes.substr(1));
    if (bytes[0] == 'E') throw std::runtime_error(bytes.substr(1));
    if (bytes[0] != 'C') throw malformed();
    Checkpoint c;
    for (uint64_t n = u64(); n > 0; --n) {
        std::string key = text();
        const std::string values = text();
        if (values.size() % sizeof(float) != 0) throw malformed();
        std::vector<float> v(values.size() / sizeof(float));
        if (!v.empty()) std::memcpy(v.data(), values.data(), values.size());
        c.arrays.emplace(std::move(key), std::move(v));
    }
    for (uint64_t n = u64(); n > 0; --n) {
        std::string key = text();
        c.integers.emplace(std::move(key), int64_t(u64()));
    }
    for (uint64_t n = u64(); n > 0; --n) {
        std::string key = text();
        c.strings.emplace(std::move(key), text());
    }
    if (at != bytes.size()) throw malformed();
    return c;
}

// read_contents in the child, its result or error encoded.
std::string read_encoded(const std::string& path, bool arrays, uint64_t file_size, const std::string& expect) {
    try {
        return encode(read_contents(path, arrays, file_size, expect));
    } catch (const WrongCheckpoint& e) {
        return std::string("W") + e.what();
    } catch (const std::exception& e) {
        return std::string("E") + e.what();
    }
}

}  // namespace

Checkpoint read_checkpoint(const std::string& path, bool arrays) {
    silence_hdf5_errors(path);
    const std::string expect =
        "expected a unet checkpoint with checkpoint_format " + std::to_string(kCheckpointFormatVersion);

    struct stat st;
    if (::stat(path.c_str(), &st) != 0) wrong_file(path, "file", std::string("cannot open: ") + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) wrong_file(path, "file", "is a directory (" + expect + ")");
    if (access(path.c_str(), R_OK) != 0) wrong_file(path, "file", std::string("cannot read: ") + std::strerror(errno));
    // Whether the file is ours at all goes by HDF5's signature: without it (an empty file too) it is
    // another kind of file; with it, a file HDF5 cannot read is a damaged checkpoint.
    if (st.st_size == 0) wrong_file(path, "file", "is empty (" + expect + ")");
    const htri_t is_h5 = H5Fis_hdf5(path.c_str());
    if (is_h5 == 0 && starts_as_hdf5(path))
        fail_format(path, "file", "the file is damaged (an HDF5 signature, but no superblock HDF5 can read: truncated?)");
    if (is_h5 == 0) wrong_file(path, "file", "not an HDF5 file (" + expect + ")");
    if (is_h5 < 0) fail_h5(path, "file", "cannot open as HDF5 (" + expect + ")");
    // A first-wave checkpoint has no checksums: it is read in a child, where a crash of HDF5 on its
    // damage ends in one line, and this process takes what the child read.
    if (unchecksummed_hdf5(path))
        return decode(read_in_child(path, [&] { return read_encoded(path, arrays, uint64_t(st.st_size), expect); }),
                      path);
    return read_contents(path, arrays, uint64_t(st.st_size), expect);
}

namespace {

Checkpoint read_contents(const std::string& path, bool arrays, uint64_t file_size, const std::string& expect) {
    Checkpoint c;
    {
        Handle fapl = checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, path, "file access", "H5Pcreate");
        check(H5Pset_file_locking(fapl.get(), true, true), path, "file access", "H5Pset_file_locking");
        const hid_t fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
        if (fid < 0) {
            const std::string cause = hdf5_cause();
            fail_format(path, "file", "cannot open as HDF5" + (cause.empty() ? "" : " (" + cause + ")") + "; " + expect);
        }
        Handle file(fid, H5Fclose);
        const hid_t root = file.get();

        if (!has_attr(root, kFormatAttr, path)) {
            std::string what = std::string("not a unet checkpoint: no root attribute ") + kFormatAttr;
            if (has_attr(root, "format_version", path)) what += ", but format_version (a prepared dataset?)";
            wrong_file(path, "/", what + "; " + expect);
        }
        const int64_t version = read_int_attr(root, kFormatAttr, path, std::string("attribute ") + kFormatAttr);
        if (version != kCheckpointFormatVersion)
            wrong_file(path, "/",
                       "checkpoint_format " + std::to_string(version) + ", this build reads checkpoint_format " +
                           std::to_string(kCheckpointFormatVersion));

        if (arrays) read_arrays(root, c, path, file_size);
        read_integers(root, c, path);
        read_strings(root, c, path, file_size);
    }
    return c;
}

}  // namespace

}  // namespace unet
