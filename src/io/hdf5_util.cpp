#include "unet/io/hdf5_util.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace unet {

void silence_hdf5_errors(const std::string& path) {
    thread_local bool silenced = false;
    if (silenced) return;
    if (H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) < 0)
        throw std::runtime_error(path + ": cannot silence the HDF5 error printer");
    silenced = true;
}

static herr_t innermost_error(unsigned n, const H5E_error2_t* e, void* data) {
    if (n == 0 && e && e->desc) *static_cast<std::string*>(data) = e->desc;
    return 0;
}

std::string hdf5_cause() {
    std::string s;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, &s);
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
}

void fail_h5(const std::string& path, const std::string& object, const std::string& what) {
    std::string msg = path + ": " + object + ": " + what;
    const std::string cause = hdf5_cause();
    if (!cause.empty()) msg += " (" + cause + ")";
    throw std::runtime_error(msg);
}

void fail_format(const std::string& path, const std::string& object, const std::string& what) {
    throw std::runtime_error(path + ": " + object + ": " + what);
}

Handle checked(hid_t id, Handle::Closer closer, const std::string& path, const std::string& object,
               const char* what) {
    if (id < 0) fail_h5(path, object, std::string(what) + " failed");
    return Handle(id, closer);
}

Handle vlen_string_type(const std::string& path, const std::string& object) {
    Handle t = checked(H5Tcopy(H5T_C_S1), H5Tclose, path, object, "H5Tcopy");
    check(H5Tset_size(t.get(), H5T_VARIABLE), path, object, "H5Tset_size");
    check(H5Tset_cset(t.get(), H5T_CSET_UTF8), path, object, "H5Tset_cset");
    return t;
}

int64_t read_int_attr(hid_t loc, const std::string& name, const std::string& path, const std::string& object) {
    Handle attr = checked(H5Aopen(loc, name.c_str(), H5P_DEFAULT), H5Aclose, path, object, "H5Aopen");
    Handle ftype = checked(H5Aget_type(attr.get()), H5Tclose, path, object, "H5Aget_type");
    if (check(H5Tget_class(ftype.get()), path, object, "H5Tget_class") != H5T_INTEGER)
        fail_format(path, object, "is not an integer");
    // HDF5 would clip a larger or unsigned 64-bit value silently.
    const size_t size = H5Tget_size(ftype.get());
    if (size > 8 || (size == 8 && H5Tget_sign(ftype.get()) == H5T_SGN_NONE))
        fail_format(path, object, "is not a signed integer of at most 64 bits");
    Handle space = checked(H5Aget_space(attr.get()), H5Sclose, path, object, "H5Aget_space");
    if (check(H5Sget_simple_extent_npoints(space.get()), path, object, "H5Sget_simple_extent_npoints") != 1)
        fail_format(path, object, "is not a single integer");
    int64_t v = 0;
    check(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), path, object, "H5Aread");
    return v;
}

bool has_attr(hid_t loc, const char* name, const std::string& path) {
    return check(H5Aexists(loc, name), path, std::string("attribute ") + name, "H5Aexists") > 0;
}

std::string read_string(hid_t obj, bool is_attr, const std::string& path, const std::string& object) {
    Handle ftype = checked(is_attr ? H5Aget_type(obj) : H5Dget_type(obj), H5Tclose, path, object, "get type");
    if (check(H5Tget_class(ftype.get()), path, object, "H5Tget_class") != H5T_STRING)
        fail_format(path, object, "is not a string");
    Handle space = checked(is_attr ? H5Aget_space(obj) : H5Dget_space(obj), H5Sclose, path, object, "get space");
    if (check(H5Sget_simple_extent_npoints(space.get()), path, object, "H5Sget_simple_extent_npoints") != 1)
        fail_format(path, object, "is not a single string");
    if (check(H5Tis_variable_str(ftype.get()), path, object, "H5Tis_variable_str") > 0) {
        Handle mtype = vlen_string_type(path, object);
        check(H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get())), path, object, "H5Tset_cset");
        char* p = nullptr;
        check(is_attr ? H5Aread(obj, mtype.get(), &p)
                      : H5Dread(obj, mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p),
              path, object, "read");
        std::string s;
        try {
            s = p ? p : "";
        } catch (...) {
            H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, &p);
            throw;
        }
        check(H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, &p), path, object, "H5Dvlen_reclaim");
        return s;
    }
    // Fixed length (another writer): read with the file's own type, then drop the padding.
    const size_t n = H5Tget_size(ftype.get());
    if (n == 0) fail_h5(path, object, "H5Tget_size failed");
    std::string s(n, '\0');
    check(is_attr ? H5Aread(obj, ftype.get(), &s[0])
                  : H5Dread(obj, ftype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &s[0]),
          path, object, "read");
    s.resize(strnlen(s.data(), n));
    if (H5Tget_strpad(ftype.get()) == H5T_STR_SPACEPAD)
        while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

void write_int_attr(hid_t loc, const std::string& name, int64_t value, hid_t file_type, const std::string& path,
                    const std::string& object, hid_t acpl) {
    Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, path, object, "H5Screate");
    Handle attr = checked(H5Acreate2(loc, name.c_str(), file_type, space.get(), acpl, H5P_DEFAULT), H5Aclose, path,
                          object, "H5Acreate2");
    check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), path, object, "H5Awrite");
    check(attr.close(), path, object, "H5Aclose");
}

void write_string_attr(hid_t loc, const std::string& name, const std::string& value, const std::string& path,
                       const std::string& object, hid_t acpl) {
    Handle type = vlen_string_type(path, object);
    Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, path, object, "H5Screate");
    Handle attr = checked(H5Acreate2(loc, name.c_str(), type.get(), space.get(), acpl, H5P_DEFAULT), H5Aclose, path,
                          object, "H5Acreate2");
    const char* p = value.c_str();
    check(H5Awrite(attr.get(), type.get(), &p), path, object, "H5Awrite");
    check(attr.close(), path, object, "H5Aclose");
}

std::vector<hsize_t> space_dims(hid_t space, const std::string& path, const std::string& object) {
    const int rank = check(H5Sget_simple_extent_ndims(space), path, object, "H5Sget_simple_extent_ndims");
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), path, object, "H5Sget_simple_extent_dims");
    return dims;
}

}  // namespace unet
