// libFuzzer harness: a --tune search-space file.
#include <exception>

#include "unet/tune/search_space.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        unet::parse_search_space(std::string(reinterpret_cast<const char*>(data), size), "fuzz.tune");
    } catch (const std::exception&) {
    }
    return 0;
}
