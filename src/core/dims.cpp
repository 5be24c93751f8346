#include "unet/core/dims.h"

namespace unet {

int64_t product(const Dims& d) {
    int64_t p = 1;
    for (auto v : d) p *= v;
    return p;
}

std::string dims_text(const Dims& d, const char* sep) {
    std::string s;
    for (size_t i = 0; i < d.size(); ++i) s += (i ? sep : "") + std::to_string(d[i]);
    return s;
}

}  // namespace unet
