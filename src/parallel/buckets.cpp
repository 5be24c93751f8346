#include "unet/parallel/buckets.h"

#include <algorithm>

namespace unet {

Buckets cut_buckets(int64_t params, int64_t bucket_floats, int64_t max_buckets) {
    bucket_floats = std::max<int64_t>({bucket_floats, (params + max_buckets - 1) / max_buckets, 1});
    Buckets out;
    for (int64_t b = 0; b < params; b += bucket_floats) {
        out.begin.push_back(b);
        out.end.push_back(std::min(params, b + bucket_floats));
    }
    return out;
}

}  // namespace unet
