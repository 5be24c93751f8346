// libFuzzer harness: DistMIS's JSON configuration (--config FILE.json).
#include <exception>

#include "unet/train/json_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        unet::json_config_to_settings(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
    } catch (const std::exception&) {
    }
    return 0;
}
