// libFuzzer harness: the .npy reader (Intel's BraTS arrays).
#include <exception>

#include "fuzz_input.h"
#include "unet/data/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string path = fuzz::as_file(data, size, "array.npy");
    try {
        unet::read_npy(path);
    } catch (const std::exception&) {
    }
    return 0;
}
