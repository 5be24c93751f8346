#include "unet/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "unet/io/hdf5_util.h"

namespace unet {

namespace {

[[noreturn]] void fail_errno(const std::string& path, const std::string& object, const std::string& what) {
    fail_format(path, object, what + ": " + std::strerror(errno));
}

// Owns a POSIX file descriptor.
class Fd {
   public:
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { close(); }
    int get() const { return fd_; }
    int close() {
        const int r = fd_ >= 0 ? ::close(fd_) : 0;
        fd_ = -1;
        return r;
    }

   private:
    int fd_;
};

std::string parent_directory(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

void fsync_directory(const std::string& dir, const std::string& path) {
    const std::string object = "directory " + dir;
    Fd fd(::open(dir.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY));
    if (fd.get() < 0) fail_errno(path, object, "open for fsync");
    // Some file systems cannot sync a directory and say so with EINVAL; nothing more to do there.
    if (::fsync(fd.get()) != 0 && errno != EINVAL) fail_errno(path, object, "fsync");
    if (fd.close() != 0) fail_errno(path, object, "close after fsync");
}

void rename_over(const std::string& tmp, const std::string& path) {
    if (std::rename(tmp.c_str(), path.c_str()) != 0) fail_errno(path, "file", "cannot rename " + tmp);
}

}  // namespace

std::string temporary_path(const std::string& path) { return path + ".tmp"; }

void write_file_atomically(const std::string& path, const void* data, size_t size) {
    const std::string tmp = temporary_path(path);
    const char* bytes = static_cast<const char*>(data);
    bool created = false;  // the .tmp file exists and is ours to remove
    try {
        {
            // A stale .tmp from a crash is overwritten; anything but a regular file is not ours.
            struct stat st;
            if (::lstat(tmp.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
                fail_format(tmp, "file", "exists and is not a regular file");
            Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
            if (fd.get() < 0) fail_errno(tmp, "file", "cannot create");
            created = true;
            for (size_t done = 0; done < size;) {
                const ssize_t w = ::write(fd.get(), bytes + done, std::min<size_t>(size - done, size_t(1) << 30));
                if (w < 0 && errno == EINTR) continue;
                if (w < 0) fail_errno(tmp, "file", "write");
                done += size_t(w);
            }
            if (::fsync(fd.get()) != 0) fail_errno(tmp, "file", "fsync");
            if (fd.close() != 0) fail_errno(tmp, "file", "close");
        }
        rename_over(tmp, path);
        created = false;
    } catch (...) {
        if (created) std::remove(tmp.c_str());
        throw;
    }
    // The new file is in place; make the rename itself durable.
    fsync_directory(parent_directory(path), path);
}

void write_file_atomically(const std::string& path, const std::string& text) {
    write_file_atomically(path, text.data(), text.size());
}

void commit_file(const std::string& tmp, const std::string& path) {
    {
        Fd fd(::open(tmp.c_str(), O_RDONLY | O_CLOEXEC));
        if (fd.get() < 0) fail_errno(tmp, "file", "open for fsync");
        if (::fsync(fd.get()) != 0 && errno != EINVAL) fail_errno(tmp, "file", "fsync");
    }
    rename_over(tmp, path);
    fsync_directory(parent_directory(path), path);
}

}  // namespace unet
