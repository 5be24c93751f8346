#include "unet/log/sample_pictures.h"

#include <algorithm>

#include "unet/core/check.h"

namespace unet {

namespace {

constexpr int kMinPictureSize = 128;

uint8_t to_byte(float t) { return uint8_t(std::clamp(t, 0.f, 1.f) * 255.f + 0.5f); }

std::array<uint8_t, 3> region_colour(const std::string& name) {
    if (name == "WT") return {40, 200, 40};
    if (name == "TC") return {230, 40, 40};
    if (name == "ET") return {255, 220, 0};
    return {60, 120, 255};
}

}  // namespace

int64_t slice_with_most_tumour(const float* mask, const Dims& spatial) {
    if (spatial.size() != 3) return 0;
    const int64_t D = spatial[0], plane = spatial[1] * spatial[2];
    int64_t best = D / 2, best_count = 0;
    for (int64_t z = 0; z < D; ++z) {
        const int64_t count = std::count_if(mask + z * plane, mask + (z + 1) * plane, [](float m) { return m >= 0.5f; });
        if (count > best_count) best = z, best_count = count;
    }
    return best;
}

SamplePictures::SamplePictures(const float* images, int64_t channels, const float* masks, const Dims& spatial,
                               const std::vector<std::string>& region_names) {
    UNET_CHECK(spatial.size() == 2 || spatial.size() == 3, "spatial rank " << spatial.size());
    UNET_CHECK(channels >= 1, "no channels");
    H_ = spatial[spatial.size() - 2];
    W_ = spatial[spatial.size() - 1];
    plane_ = H_ * W_;
    z_ = slice_with_most_tumour(masks, spatial);
    scale_ = int(std::max<int64_t>(1, (kMinPictureSize + std::max(H_, W_) - 1) / std::max(H_, W_)));
    input_.assign(images + z_ * plane_, images + (z_ + 1) * plane_);
    const int64_t regions = std::max<int64_t>(1, int64_t(region_names.size())), volume = product(spatial);
    volume_ = volume;
    std::vector<int64_t> area;
    for (int64_t r = 0; r < regions; ++r) {
        const float* slice = masks + r * volume + z_ * plane_;
        mask_.insert(mask_.end(), slice, slice + plane_);
        area.push_back(std::count_if(slice, slice + plane_, [](float m) { return m >= 0.5f; }));
        paint_order_.push_back(int(r));
        colours_.push_back(region_colour(region_names.empty() ? "WT" : region_names[size_t(r)]));
    }
    std::stable_sort(paint_order_.begin(), paint_order_.end(), [&](int a, int b) { return area[size_t(a)] > area[size_t(b)]; });
    std::vector<float> nonzero;
    for (float v : input_)
        if (v != 0.f) nonzero.push_back(v);
    if (nonzero.size() >= 2) {
        std::sort(nonzero.begin(), nonzero.end());
        lo_ = nonzero[nonzero.size() / 100];
        hi_ = nonzero[nonzero.size() - 1 - nonzero.size() / 100];
        if (hi_ <= lo_) hi_ = lo_ + 1;
    }
}

uint8_t SamplePictures::grey(int64_t i) const {
    const float v = input_[size_t(i)];
    return v == 0.f ? 0 : to_byte((v - lo_) / (hi_ - lo_));
}

template <class Shade>
RgbImage SamplePictures::draw(Shade shade) const {
    RgbImage out;
    out.resize(int(W_) * scale_, int(H_) * scale_);
    for (int y = 0; y < out.height; ++y)
        for (int x = 0; x < out.width; ++x) shade(int64_t(y / scale_) * W_ + int64_t(x / scale_), out.at(x, y));
    return out;
}

RgbImage SamplePictures::input() const {
    return draw([&](int64_t i, uint8_t* p) { p[0] = p[1] = p[2] = grey(i); });
}

int SamplePictures::region_at(const float* slices, int64_t i) const {
    int found = -1;
    for (int r : paint_order_)
        if (slices[r * plane_ + i] >= 0.5f) found = r;
    return found;
}

RgbImage SamplePictures::regions_picture(const float* slices, bool over_input) const {
    return draw([&](int64_t i, uint8_t* p) {
        const int r = region_at(slices, i);
        const uint8_t g = over_input ? grey(i) : 0;
        for (int c = 0; c < 3; ++c)
            p[c] = r < 0 ? g : over_input ? uint8_t((g + colours_[size_t(r)][size_t(c)]) / 2) : colours_[size_t(r)][size_t(c)];
    });
}

RgbImage SamplePictures::truth() const {
    if (paint_order_.size() > 1) return regions_picture(mask_.data(), false);
    return draw([&](int64_t i, uint8_t* p) { p[0] = p[1] = p[2] = mask_[size_t(i)] >= 0.5f ? 255 : 0; });
}

// The chosen slice of every region of a model output (regions x spatial).
static std::vector<float> region_slices(const float* probabilities, size_t regions, int64_t z, int64_t plane,
                                        int64_t volume) {
    std::vector<float> out;
    for (size_t r = 0; r < regions; ++r) {
        const float* slice = probabilities + int64_t(r) * volume + z * plane;
        out.insert(out.end(), slice, slice + plane);
    }
    return out;
}

RgbImage SamplePictures::prediction(const float* probabilities) const {
    if (paint_order_.size() > 1)
        return regions_picture(region_slices(probabilities, paint_order_.size(), z_, plane_, volume_).data(), false);
    const float* prob = probabilities + z_ * plane_;
    return draw([&](int64_t i, uint8_t* p) { p[0] = p[1] = p[2] = to_byte(prob[i]); });
}

RgbImage SamplePictures::overlay(const float* probabilities) const {
    if (paint_order_.size() > 1)
        return regions_picture(region_slices(probabilities, paint_order_.size(), z_, plane_, volume_).data(), true);
    const float* prob = probabilities + z_ * plane_;
    return draw([&](int64_t i, uint8_t* p) {
        const uint8_t g = grey(i);
        const bool truth = mask_[size_t(i)] >= 0.5f, predicted = prob[i] >= 0.5f;
        // Tints keep some of the scan visible underneath.
        p[0] = truth ? uint8_t(std::min(255, 160 + g / 3)) : (predicted ? uint8_t(g / 3) : g);
        p[1] = predicted ? uint8_t(std::min(255, 160 + g / 3)) : (truth ? uint8_t(g / 3) : g);
        p[2] = truth || predicted ? uint8_t(g / 3) : g;
    });
}

}  // namespace unet
