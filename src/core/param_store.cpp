#include "unet/core/param_store.h"

#include <algorithm>

#include "unet/core/check.h"

namespace unet {

static int add_view(std::vector<ParamView>& views, int64_t& total, const std::string& name,
                    const Dims& shape) {
    for (const auto& v : views) UNET_CHECK(v.name != name, "duplicate parameter " << name);
    ParamView v;
    v.name = name;
    v.offset = total;
    v.count = product(shape);
    v.shape = shape;
    // Keep every tensor 64-byte aligned so SIMD loops and reorders start on a cache line.
    total += (v.count + 15) / 16 * 16;
    views.push_back(v);
    return int(views.size()) - 1;
}

int ParamStore::add(const std::string& name, const Dims& shape) {
    UNET_CHECK(!finalized_, "add(" << name << ") after finalize");
    return add_view(views_, total_, name, shape);
}

int ParamStore::add_buffer(const std::string& name, const Dims& shape) {
    UNET_CHECK(!finalized_, "add_buffer(" << name << ") after finalize");
    return add_view(buffer_views_, buffers_total_, name, shape);
}

int ParamStore::find_buffer(const std::string& name) const {
    for (size_t i = 0; i < buffer_views_.size(); ++i)
        if (buffer_views_[i].name == name) return int(i);
    return -1;
}

int64_t ParamStore::parameter_count() const {
    int64_t n = 0;
    for (const auto& v : views_) n += v.count;
    return n;
}

void ParamStore::finalize() {
    params_.assign(size_t(total_), 0.f);
    grads_.assign(size_t(total_), 0.f);
    buffers_.assign(size_t(buffers_total_), 0.f);
    finalized_ = true;
}

int ParamStore::find(const std::string& name) const {
    for (size_t i = 0; i < views_.size(); ++i)
        if (views_[i].name == name) return int(i);
    return -1;
}

void ParamStore::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.f); }

}  // namespace unet
