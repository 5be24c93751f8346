#include "unet/train/run_directory.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "unet/core/check.h"

namespace unet {

namespace {

namespace fs = std::filesystem;

enum Verdict { kFree = 0, kHoldsRun = 1, kInUse = 2 };

struct LockOwner {
    long pid = 0;
    std::string host, since;
};

// What <logdir>/run.lock says; pid 0 when it is absent or unreadable.
LockOwner read_lock(const std::string& path) {
    LockOwner owner;
    std::ifstream in(path);
    in >> owner.pid >> owner.host;
    std::getline(in >> std::ws, owner.since);
    if (!in && !in.eof()) owner.pid = 0;
    return owner;
}

bool alive_here(const LockOwner& owner) {
    return owner.host == this_host() && owner.pid > 0 && (kill(pid_t(owner.pid), 0) == 0 || errno == EPERM);
}

// A resumed run may follow its own predecessor at once (the launcher's restart after a rank died):
// the old rank 0 can still be finishing. It gets this long to go before its lock counts as live.
constexpr int kResumeGraceTenths = 300;

LockOwner current_owner(const std::string& lock, bool resuming) {
    LockOwner owner = read_lock(lock);
    for (int t = 0; resuming && t < kResumeGraceTenths && alive_here(owner); ++t) {
        usleep(100000);
        owner = read_lock(lock);
    }
    return owner;
}

// Rank 0's verdict on the directory, with the line to say when it is not free.
Verdict judge(const TrainOptions& o, std::string& why) {
    const std::string& dir = o.logdir;
    const std::string lock = dir + "/run.lock";
    const LockOwner owner = current_owner(lock, !o.resume.empty());
    if (owner.pid > 0 && (owner.host != this_host() || alive_here(owner))) {
        why = "--logdir " + dir + ": a run is using it (pid " + std::to_string(owner.pid) + " on " + owner.host +
              ", since " + owner.since + "); wait for it, or use another --logdir" +
              (owner.host != this_host() ? " (if that run is over, remove " + lock + ")" : "");
        return kInUse;
    }
    if (!o.resume.empty() || o.overwrite) return kFree;
    for (const char* name : {"checkpoint_latest.h5", "checkpoint_best.h5"})
        if (fs::exists(dir + "/" + name)) {
            why = "--logdir " + dir + " holds a run already (" + name +
                  "); continue it with --resume auto, replace it with --overwrite, or use another --logdir";
            return kHoldsRun;
        }
    return kFree;
}

std::string now_text() {
    char text[32];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
    return text;
}

// Writes the lock under a temporary name and renames it over a stale one; false when the
// directory cannot be written (training.log's own opening then says so, on one line).
bool write_lock(const std::string& path) {
    const std::string tmp = path + ".tmp" + std::to_string(getpid());
    {
        std::ofstream out(tmp);
        out << getpid() << " " << this_host() << " " << now_text() << "\n";
        if (!out) {
            std::remove(tmp.c_str());
            return false;
        }
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

std::string this_host() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) return "localhost";
    return host;
}

RunDirectoryLock::~RunDirectoryLock() {
    // Only our own lock: a run that took over a stale one wrote its pid in it.
    if (read_lock(path_).pid == long(getpid())) std::remove(path_.c_str());
}

std::unique_ptr<RunDirectoryLock> claim_run_directory(const TrainOptions& o, Comm& comm) {
    std::string why;
    const int verdict = comm.max(comm.is_root() ? int(judge(o, why)) : int(kFree));
    if (verdict != kFree)
        throw UsageError(comm.is_root() ? why : "--logdir " + o.logdir + ": refused by rank 0");
    if (!comm.is_root()) return nullptr;
    std::error_code ec;
    fs::create_directories(o.logdir, ec);  // a failure shows when training.log is opened
    const std::string path = o.logdir + "/run.lock";
    if (!write_lock(path)) return nullptr;
    return std::make_unique<RunDirectoryLock>(path);
}

}  // namespace unet
