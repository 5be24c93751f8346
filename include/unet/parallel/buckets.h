// The flat gradient buffer cut into buckets of about --bucket_mb: the unit every gradient exchange
// moves while backward still runs. Bucket b covers [begin[b], end[b]); the buckets are contiguous,
// in increasing offset order, and cover [0, params) exactly. With parameter servers, bucket b
// belongs to server owner(b) = b % servers (round robin, so --num_ps shards the parameters).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace unet {

// Messages are tagged per bucket: at most this many buckets (larger ones if need be).
constexpr int64_t kMaxBuckets = 100000;

struct Buckets {
    std::vector<int64_t> begin, end;
    int count() const { return int(begin.size()); }
    int64_t size(int b) const { return end[size_t(b)] - begin[size_t(b)]; }
    static int owner(int bucket, int servers) { return bucket % servers; }
};

// Buckets of `bucket_floats` floats (at least 1, and large enough for at most `max_buckets`
// buckets), the last one shorter. `params` = 0 gives no buckets.
Buckets cut_buckets(int64_t params, int64_t bucket_floats, int64_t max_buckets = kMaxBuckets);

}  // namespace unet
