// libFuzzer harness: the TensorBoard record reader (length, masked CRC-32C, data, CRC).
#include <exception>

#include "unet/log/records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        unet::scan_records(std::string(reinterpret_cast<const char*>(data), size));
    } catch (const std::exception&) {
    }
    return 0;
}
