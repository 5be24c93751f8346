#include "unet/io/hdf5_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <ctime>
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
    const std::string cause = hdf5_cause();
    // A checksum (Fletcher32 on a chunk, HDF5's own on metadata) or a structure's signature that
    // does not match: the bytes on disk changed after they were written.
    if (cause.find("checksum") != std::string::npos || cause.find("signature") != std::string::npos)
        throw std::runtime_error(path + ": " + object + ": the file is damaged (" + cause + "; " + what + ")");
    std::string msg = path + ": " + object + ": " + what;
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

Handle fixed_string_type(size_t bytes, const std::string& path, const std::string& object) {
    Handle t = checked(H5Tcopy(H5T_C_S1), H5Tclose, path, object, "H5Tcopy");
    check(H5Tset_size(t.get(), std::max<size_t>(bytes, 1)), path, object, "H5Tset_size");
    // NUL-padded, not NUL-terminated: a value that fills the type needs no extra byte.
    check(H5Tset_strpad(t.get(), H5T_STR_NULLPAD), path, object, "H5Tset_strpad");
    check(H5Tset_cset(t.get(), H5T_CSET_UTF8), path, object, "H5Tset_cset");
    return t;
}

void use_checksummed_format(hid_t fapl, const std::string& path) {
    check(H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110), path, "file access", "H5Pset_libver_bounds");
}

void add_checksum(hid_t dcpl, const std::string& path, const std::string& object) {
    check(H5Pset_fletcher32(dcpl), path, object, "H5Pset_fletcher32");
}

uint64_t file_bytes(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) fail_format(path, "file", std::string("cannot open: ") + std::strerror(errno));
    return uint64_t(st.st_size);
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

std::string read_string(hid_t obj, bool is_attr, const std::string& path, const std::string& object,
                        size_t max_bytes) {
    Handle ftype = checked(is_attr ? H5Aget_type(obj) : H5Dget_type(obj), H5Tclose, path, object, "get type");
    if (check(H5Tget_class(ftype.get()), path, object, "H5Tget_class") != H5T_STRING)
        fail_format(path, object, "is not a string");
    Handle space = checked(is_attr ? H5Aget_space(obj) : H5Dget_space(obj), H5Sclose, path, object, "get space");
    if (check(H5Sget_simple_extent_npoints(space.get()), path, object, "H5Sget_simple_extent_npoints") != 1)
        fail_format(path, object, "is not a single string");
    if (check(H5Tis_variable_str(ftype.get()), path, object, "H5Tis_variable_str") > 0) {
        // Files written before fixed-length strings (read as they always were).
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
    // Fixed length: read with the file's own type, then drop the padding.
    const size_t n = H5Tget_size(ftype.get());
    if (n == 0) fail_h5(path, object, "H5Tget_size failed");
    if (n > max_bytes)
        fail_format(path, object,
                    "claims a string of " + std::to_string(n) + " bytes, more than the " + std::to_string(max_bytes) +
                        " it can hold (damaged?)");
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
    Handle type = fixed_string_type(value.size(), path, object);
    Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, path, object, "H5Screate");
    Handle attr = checked(H5Acreate2(loc, name.c_str(), type.get(), space.get(), acpl, H5P_DEFAULT), H5Aclose, path,
                          object, "H5Acreate2");
    // The type is at least one byte: "" is written as one NUL.
    const std::string bytes = value.empty() ? std::string(1, '\0') : value;
    check(H5Awrite(attr.get(), type.get(), bytes.data()), path, object, "H5Awrite");
    check(attr.close(), path, object, "H5Aclose");
}

void write_string_dataset(hid_t loc, const std::string& name, const std::string& value, hid_t lcpl,
                          const std::string& path, const std::string& object) {
    Handle type = fixed_string_type(value.size(), path, object);
    const hsize_t one = 1;
    Handle space = checked(H5Screate_simple(1, &one, nullptr), H5Sclose, path, object, "H5Screate_simple");
    Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, path, object, "H5Pcreate");
    check(H5Pset_chunk(dcpl.get(), 1, &one), path, object, "H5Pset_chunk");
    add_checksum(dcpl.get(), path, object);
    Handle ds = checked(H5Dcreate2(loc, name.c_str(), type.get(), space.get(), lcpl, dcpl.get(), H5P_DEFAULT),
                        H5Dclose, path, object, "H5Dcreate2");
    const std::string bytes = value.empty() ? std::string(1, '\0') : value;
    check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()), path, object, "H5Dwrite");
    check(ds.close(), path, object, "H5Dclose");
}

std::vector<hsize_t> space_dims(hid_t space, const std::string& path, const std::string& object) {
    const int rank = check(H5Sget_simple_extent_ndims(space), path, object, "H5Sget_simple_extent_ndims");
    if (rank > H5S_MAX_RANK) fail_format(path, object, "has " + std::to_string(rank) + " dimensions (damaged?)");
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), path, object, "H5Sget_simple_extent_dims");
    return dims;
}

bool unchecksummed_hdf5(const std::string& path) {
    static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[9] = {};
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    const size_t n = std::fread(head, 1, sizeof head, f);
    std::fclose(f);
    // Our files start with the superblock (no user block); anything else is HDF5's to judge.
    return n == sizeof head && std::memcmp(head, signature, 8) == 0 && head[8] < 2;
}

namespace {

// Resident bytes of process `pid` (0 when it cannot be read: gone already).
uint64_t resident_bytes(pid_t pid) {
    char name[64];
    std::snprintf(name, sizeof name, "/proc/%d/statm", int(pid));
    std::FILE* f = std::fopen(name, "r");
    if (!f) return 0;
    unsigned long long size = 0, resident = 0;
    const int n = std::fscanf(f, "%llu %llu", &size, &resident);
    std::fclose(f);
    return n == 2 ? uint64_t(resident) * uint64_t(sysconf(_SC_PAGESIZE)) : 0;
}

std::string size_text(uint64_t bytes) {
    return bytes < (uint64_t(1) << 20) ? std::to_string((bytes + 1023) >> 10) + " KiB"
                                       : std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB";
}

}  // namespace

namespace {

// Writes all of `bytes` to `fd` (the child's end of the pipe); false when the parent is gone.
bool write_all(int fd, const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += size_t(n);
    }
    return true;
}

// Appends what the pipe holds now to `out`; false once the child's end is closed (end of file).
bool drain(int fd, std::string& out) {
    char buf[1 << 16];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, size_t(n));
        } else if (n == 0) {
            return false;
        } else {
            return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK;
        }
    }
}

[[noreturn]] void refuse_unchecked(const std::string& path, const std::string& why) {
    throw std::runtime_error(path + ": file: cannot check this old file (no checksums) in a child process before reading it (" +
                             why + ": " + std::strerror(errno) + "); not read");
}

}  // namespace

std::string read_in_child(const std::string& path, const std::function<std::string()>& read, int seconds) {
    std::fflush(nullptr);  // nothing buffered is written twice
    // What the child may use beyond the pages it shares with this process: reading the metadata
    // and arrays of a file takes about the file's size; damaged first-wave metadata (a mangled
    // length) made HDF5 allocate 1.7 GB for an 18 KB checkpoint, which the parent would then have
    // allocated again. A child past the bound is ended like a hung one.
    struct stat st;
    const uint64_t file_size = ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
    const uint64_t allowance = std::max<uint64_t>(uint64_t(256) << 20, 4 * file_size);
    const uint64_t resident_limit = resident_bytes(getpid()) + allowance;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) refuse_unchecked(path, "pipe");
    const pid_t pid = fork();
    if (pid < 0) {
        const int e = errno;
        close(fds[0]), close(fds[1]);
        errno = e;
        refuse_unchecked(path, "fork");
    }
    if (pid == 0) {
        close(fds[0]);
        // Dies with this process (a Ctrl-C, a timeout) instead of looping on in the library.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) _exit(0);  // the parent is gone already
        // The kernel's own handling of a crash (a sanitizer's or libFuzzer's handler would report
        // the library's crash as ours and exit normally), without a core file.
        for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(sig, SIG_DFL);
        const rlimit no_core{0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        std::string result;
        try {
            result = read();
        } catch (...) {
        }
        // No exit handlers: they belong to the parent (MPI, HDF5, sanitizers).
        _exit(write_all(fds[1], result) ? 0 : 1);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    const auto end_child = [&](int* status) {
        kill(pid, SIGKILL);
        waitpid(pid, status, 0);
        close(fds[0]);
    };
    std::string result;
    bool open = true;  // the child's end of the pipe
    int status = 0;
    // Most reads end within a millisecond or two: wait for the pipe briefly at first, then 2 ms at
    // a time (its data wakes the wait at once).
    long pause_ns = 100000;
    for (;;) {
        if (open) open = drain(fds[0], result);
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            const int e = errno;
            end_child(&status);
            errno = e;
            refuse_unchecked(path, "waitpid");
        }
        if (resident_bytes(pid) > resident_limit) {
            end_child(&status);
            throw std::runtime_error(path + ": file: the file is damaged (the HDF5 library used more than " +
                                     size_text(allowance) + " of memory reading a file of " + size_text(file_size) +
                                     "; an old file without checksums)");
        }
        if (std::chrono::steady_clock::now() > deadline) {
            end_child(&status);
            throw std::runtime_error(path + ": file: the file is damaged (the HDF5 library hung reading it for " +
                                     std::to_string(seconds) + " s)");
        }
        pollfd p{fds[0], POLLIN, 0};
        const timespec wait{0, pause_ns};
        if (!open || ppoll(&p, 1, &wait, nullptr) < 0) nanosleep(&wait, nullptr);
        pause_ns = std::min<long>(2 * pause_ns, 2000000);
    }
    if (open) drain(fds[0], result);  // the rest, written before the child ended
    close(fds[0]);
    // The child ends with _exit(0) whatever the read threw: anything else is a crash (a signal; or,
    // in a sanitizer build, its report on the library's wild memcpy and a non-zero exit).
    if (WIFSIGNALED(status))
        throw std::runtime_error(path + ": file: the file is damaged (the HDF5 library crashed reading it: " +
                                 strsignal(WTERMSIG(status)) + "; an old file without checksums)");
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        throw std::runtime_error(path + ": file: the file is damaged (the HDF5 library crashed reading it: exit " +
                                 std::to_string(WEXITSTATUS(status)) + "; an old file without checksums)");
    return result;
}

void read_in_child_first(const std::string& path, const std::function<void()>& read, int seconds) {
    read_in_child(
        path,
        [&] {
            read();
            return std::string();
        },
        seconds);
}

}  // namespace unet
