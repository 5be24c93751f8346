// HDF5 C API helpers shared by the dataset and checkpoint files: one-line errors naming the file and
// object (with HDF5's innermost message), a silenced error printer, and an RAII owner for ids so
// that no error path leaks one (a leaked id keeps the file open after H5Fclose).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

// The library prints its whole error stack to stderr on every failed call unless told not to. In
// the thread-safe build every thread has its own printer setting: each thread silences it once.
void silence_hdf5_errors(const std::string& path);

// The most specific message on this thread's HDF5 error stack, or "" when it is empty.
std::string hdf5_cause();

// A failed HDF5 call: "<file>: <object>: <what> (<HDF5's innermost message>)".
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
// A variable-length UTF-8 string type.
Handle vlen_string_type(const std::string& path, const std::string& object);

// Scalar attributes, created with `acpl` (H5P_DEFAULT, or a UTF-8 name encoding): an integer
// stored as `file_type`, a variable-length UTF-8 string. Errors name `object`.
void write_int_attr(hid_t loc, const std::string& name, int64_t value, hid_t file_type, const std::string& path,
                    const std::string& object, hid_t acpl = H5P_DEFAULT);
void write_string_attr(hid_t loc, const std::string& name, const std::string& value, const std::string& path,
                       const std::string& object, hid_t acpl = H5P_DEFAULT);
// The dimensions of a simple dataspace.
std::vector<hsize_t> space_dims(hid_t space, const std::string& path, const std::string& object);

// A scalar signed integer attribute of at most 64 bits (anything else fails naming `object`).
int64_t read_int_attr(hid_t loc, const std::string& name, const std::string& path, const std::string& object);
bool has_attr(hid_t loc, const char* name, const std::string& path);
// One string from a scalar attribute (is_attr) or dataset, variable or fixed length.
std::string read_string(hid_t obj, bool is_attr, const std::string& path, const std::string& object);

}  // namespace unet
