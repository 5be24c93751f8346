#include "unet/core/dims.h"

namespace unet {

int64_t product(const Dims& d) {
    int64_t p = 1;
    for (auto v : d) p *= v;
    return p;
}

}  // namespace unet
