#include "unet/train/memory_estimate.h"

#include <algorithm>
#include <cstdio>

namespace unet {

int64_t MemoryEstimateParts::total() const {
    return process + network + scratchpad + parameters + optimizer + data + std::max(whole_volume, checkpoint);
}

std::string MemoryEstimateParts::describe() const {
    auto mib = [](int64_t bytes) { return double(bytes) / (1024.0 * 1024.0); };
    char line[512];
    std::snprintf(line, sizeof line,
                  "memory estimate per worker: network %.0f MiB (batch %lld) + oneDNN scratchpad %.0f + parameters %.0f"
                  " + optimizer %.0f + data %.0f + max(whole-volume validation %.0f, checkpoint write %.0f) + process %.0f"
                  " = %.0f MiB",
                  mib(network), (long long)batch, mib(scratchpad), mib(parameters), mib(optimizer), mib(data),
                  mib(whole_volume), mib(checkpoint), mib(process), mib(total()));
    return line;
}

int64_t process_base_bytes(bool under_mpi) { return (under_mpi ? 60 : 30) * int64_t(1) << 20; }

}  // namespace unet
