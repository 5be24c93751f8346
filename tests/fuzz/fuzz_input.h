// Shared by the fuzz harnesses: the input bytes as a file (the readers take paths), in a folder of
// this process's own under TMPDIR (else /dev/shm), removed at exit (run_fuzz.sh also removes the
// TMPDIR it gives, since libFuzzer ends a hung or crashed run without exit handlers).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fuzz {

inline const std::string& scratch_dir() {
    // Never destroyed: the exit handler that removes the folder runs after static destructors.
    static const std::string* dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        const char* base = tmp ? tmp : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        auto* d = new std::string(std::string(base) + "/unet_fuzz_" + std::to_string(getpid()));
        if (std::system(("mkdir -p '" + *d + "'").c_str()) != 0) std::abort();
        std::atexit([] {
            if (std::system(("rm -rf '" + scratch_dir() + "'").c_str()) != 0) {
            }
        });
        return d;
    }();
    return *dir;
}

// Writes the bytes to <scratch>/<name> and returns its path.
inline std::string as_file(const uint8_t* data, size_t size, const std::string& name) {
    const std::string path = scratch_dir() + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    return path;
}

}  // namespace fuzz
