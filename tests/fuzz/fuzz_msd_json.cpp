// libFuzzer harness: an MSD folder's dataset.json (the folder holds nothing else).
#include <exception>

#include "fuzz_input.h"
#include "unet/data/msd_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::as_file(data, size, "dataset.json");
    try {
        unet::read_msd_index(fuzz::scratch_dir());
    } catch (const std::exception&) {
    }
    return 0;
}
