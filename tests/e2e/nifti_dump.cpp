// nifti_dump FILE [OUT]: reads FILE with unet::read_nifti and prints "C D H W" on stdout; the data
// (C x D x H x W float32, little-endian) goes to OUT, or after the shape line on stdout when OUT
// is absent. On error: the one-line message on stderr, exit code 1. Used by nibabel_nifti.sh.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "unet/data/nifti.h"

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: nifti_dump FILE [OUT]\n");
        return 2;
    }
    try {
        const unet::Volume v = unet::read_nifti(argv[1]);
        std::FILE* out = stdout;
        if (argc == 3) {
            out = std::fopen(argv[2], "wb");
            if (!out) {
                std::fprintf(stderr, "nifti_dump: cannot write %s\n", argv[2]);
                return 1;
            }
        }
        std::printf("%lld %lld %lld %lld\n", (long long)v.channels, (long long)v.depth, (long long)v.height,
                    (long long)v.width);
        std::fflush(stdout);
        // Always '<f4': byte-swapped on a big-endian host.
        std::vector<float> data = v.data;
        const uint16_t probe = 1;
        if (*reinterpret_cast<const unsigned char*>(&probe) != 1)
            for (float& x : data) {
                unsigned char b[4];
                std::memcpy(b, &x, 4);
                std::swap(b[0], b[3]), std::swap(b[1], b[2]);
                std::memcpy(&x, b, 4);
            }
        if (std::fwrite(data.data(), sizeof(float), data.size(), out) != data.size()) {
            std::fprintf(stderr, "nifti_dump: write failed\n");
            return 1;
        }
        if (out != stdout && std::fclose(out) != 0) {
            std::fprintf(stderr, "nifti_dump: write failed\n");
            return 1;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
