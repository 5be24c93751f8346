// HDF5 C API helpers shared by the dataset and checkpoint files: one-line errors naming the file and
// object (with HDF5's innermost message), a silenced error printer, and an RAII owner for ids so
// that no error path leaks one (a leaked id keeps the file open after H5Fclose).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace unet {

// The library prints its whole error stack to stderr on every failed call unless told not to. In
// the thread-safe build every thread has its own printer setting: each thread silences it once.
void silence_hdf5_errors(const std::string& path);

// The most specific message on this thread's HDF5 error stack, or "" when it is empty.
std::string hdf5_cause();

// A failed HDF5 call: "<file>: <object>: <what> (<HDF5's innermost message>)", or, when that message
// is a failed checksum or signature, "<file>: <object>: the file is damaged (<message>; <what>)".
[[noreturn]] void fail_h5(const std::string& path, const std::string& object, const std::string& what);
// A file HDF5 reads fine but that is not what the format says (and other non-HDF5 failures).
[[noreturn]] void fail_format(const std::string& path, const std::string& object, const std::string& what);

template <typename T>
T check(T r, const std::string& path, const std::string& object, const char* what) {
    if (r < 0) fail_h5(path, object, std::string(what) + " failed");
    return r;
}

class Handle {
   public:
    using Closer = herr_t (*)(hid_t);
    Handle() = default;
    Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
    Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            close();
            id_ = o.id_;
            closer_ = o.closer_;
            o.id_ = -1;
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { close(); }

    hid_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }
    herr_t close() {
        herr_t r = 0;
        if (id_ >= 0 && closer_) r = closer_(id_);
        id_ = -1;
        return r;
    }

   private:
    hid_t id_ = -1;
    Closer closer_ = nullptr;
};

// An id from an H5?create/open call, owned, or fail_h5 when the call failed.
Handle checked(hid_t id, Handle::Closer closer, const std::string& path, const std::string& object,
               const char* what);
// A variable-length UTF-8 string type: only to read files written before fixed-length strings
// (their bytes live in HDF5's global heap, which nothing checks: a damaged heap crashed the
// library). Nothing we write uses it.
Handle vlen_string_type(const std::string& path, const std::string& object);
// A fixed-length UTF-8 string type of `bytes` bytes (at least 1), padded with NULs.
Handle fixed_string_type(size_t bytes, const std::string& path, const std::string& object);

// What every file we write uses, so that damage is found instead of trusted:
// file access with the HDF5 1.10 object format (superblock, object headers, the heaps and B-trees
// of groups and dense attributes, and chunk indexes carry checksums; HDF5 >= 1.10 reads it: the
// 1.8 format still indexed chunks in an unchecked v1 B-tree, where one flipped key had a sample
// read another sample's chunk) ...
void use_checksummed_format(hid_t fapl, const std::string& path);
// ... and the Fletcher32 filter, added last to a chunked dataset's pipeline, so that a chunk's
// stored bytes are checked before any other filter (inflate) sees them.
void add_checksum(hid_t dcpl, const std::string& path, const std::string& object);

// Scalar attributes, created with `acpl` (H5P_DEFAULT, or a UTF-8 name encoding): an integer
// stored as `file_type`, a fixed-length UTF-8 string. Errors name `object`.
void write_int_attr(hid_t loc, const std::string& name, int64_t value, hid_t file_type, const std::string& path,
                    const std::string& object, hid_t acpl = H5P_DEFAULT);
void write_string_attr(hid_t loc, const std::string& name, const std::string& value, const std::string& path,
                       const std::string& object, hid_t acpl = H5P_DEFAULT);
// A string as a dataset of one fixed-length string, chunked and checksummed (for values too long
// for an attribute), created with `lcpl`.
void write_string_dataset(hid_t loc, const std::string& name, const std::string& value, hid_t lcpl,
                          const std::string& path, const std::string& object);
// The dimensions of a simple dataspace (at most 32, as HDF5 allows).
std::vector<hsize_t> space_dims(hid_t space, const std::string& path, const std::string& object);

// A scalar signed integer attribute of at most 64 bits (anything else fails naming `object`).
int64_t read_int_attr(hid_t loc, const std::string& name, const std::string& path, const std::string& object);
bool has_attr(hid_t loc, const char* name, const std::string& path);
// One string from a scalar attribute (is_attr) or dataset, variable or fixed length. A fixed
// length above max_bytes (the caller's bound: the file's size, say) fails before anything is
// allocated.
std::string read_string(hid_t obj, bool is_attr, const std::string& path, const std::string& object,
                        size_t max_bytes);
// The size of the file at `path` in bytes (fails naming it): the bound for what it can hold.
uint64_t file_bytes(const std::string& path);

// Files in HDF5's earliest object format (superblock version 0 or 1: what this program wrote
// before, and h5py's default) carry no metadata checksums, and HDF5 1.10.8 follows their damaged
// metadata into a segmentation fault (found by fuzzing a first-wave checkpoint: H5Aiterate2 on a
// mangled attribute table). Whether `path` is such a file.
bool unchecksummed_hdf5(const std::string& path);
// Runs `read` in a child process and returns the bytes it returned, sent back through a pipe, so
// that a crash or hang of the HDF5 library on a damaged file ends in one line naming the file
// instead of the program, and this process never follows the file's metadata itself: throws
// std::runtime_error "<path>: file: the file is damaged (the HDF5 library crashed reading it:
// <signal>)", "... hung ..." or "... used more than N MiB of memory ..." (a child resident beyond
// this process's size plus max(256 MiB, 4 x the file's size) is ended: damaged lengths make the
// library allocate gigabytes for a small file). `read` must not throw: an error it meets is part
// of what it returns. Where no child can be started (fork fails), the file is refused: it is not
// read unchecked.
std::string read_in_child(const std::string& path, const std::function<std::string()>& read, int seconds = 120);
// The same for a read whose result is thrown away (a check before the real read in this process,
// which meets again any error `read` throws).
void read_in_child_first(const std::string& path, const std::function<void()>& read, int seconds = 120);

}  // namespace unet
