#include "unet/data/label_regions.h"

#include <algorithm>
#include <cctype>
#include <numeric>
#include <stdexcept>

#include "unet/core/check.h"

namespace unet {

namespace {

Region named_region(const std::string& lower) {
    if (lower == "wt") return {"WT", {1, 2, 3}};
    if (lower == "tc") return {"TC", {2, 3}};
    if (lower == "et") return {"ET", {3}};
    throw UsageError("--labels: unknown region '" + lower + "'; expected wt, tc, et or regions (wt,tc,et)");
}

std::string lowercase(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// Region indices by decreasing size (ties keep the list order): the painting order.
std::vector<size_t> largest_first(const Regions& regions) {
    std::vector<size_t> order(regions.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return regions[a].labels.size() > regions[b].labels.size(); });
    return order;
}

}  // namespace

Regions whole_tumour_region() { return {named_region("wt")}; }

Regions brats_regions() { return {named_region("wt"), named_region("tc"), named_region("et")}; }

Regions parse_regions(const std::string& text) {
    const std::string t = lowercase(text);
    if (t == "regions") return brats_regions();
    Regions out;
    size_t from = 0;
    while (from <= t.size()) {
        const size_t comma = std::min(t.find(',', from), t.size());
        const std::string name = t.substr(from, comma - from);
        if (name.empty()) throw UsageError("--labels: expected a list such as wt,tc,et, got '" + text + "'");
        Region r = named_region(name);
        for (const Region& seen : out)
            if (seen.name == r.name) throw UsageError("--labels: region '" + name + "' is listed twice in '" + text + "'");
        out.push_back(std::move(r));
        from = comma + 1;
    }
    return out;
}

std::string regions_text(const Regions& regions) {
    std::string s;
    for (const Region& r : regions) s += (s.empty() ? "" : ",") + lowercase(r.name);
    return s;
}

bool is_whole_tumour_only(const Regions& regions) { return regions.size() == 1 && regions[0].name == "WT"; }

void region_masks(const uint8_t* labels, int64_t voxels, const Regions& regions, float* out) {
    for (size_t r = 0; r < regions.size(); ++r) {
        bool in[256] = {};
        for (int l : regions[r].labels) in[l & 255] = true;
        float* o = out + int64_t(r) * voxels;
        for (int64_t i = 0; i < voxels; ++i) {
            if (labels[i] > kMaxLabel)
                throw std::runtime_error("label value " + std::to_string(labels[i]) + " in a mask: expected 0-" +
                                         std::to_string(kMaxLabel) + " (MSD Task01 numbering)");
            o[i] = in[labels[i]] ? 1.f : 0.f;
        }
    }
}

void label_map_from_regions(const float* probabilities, int64_t voxels, const Regions& regions, uint8_t* out,
                            float threshold) {
    std::fill(out, out + voxels, uint8_t(0));
    for (size_t r : largest_first(regions)) {
        const uint8_t paint = uint8_t(*std::min_element(regions[r].labels.begin(), regions[r].labels.end()));
        const float* p = probabilities + int64_t(r) * voxels;
        for (int64_t i = 0; i < voxels; ++i)
            if (p[i] > threshold) out[i] = paint;
    }
}

}  // namespace unet
