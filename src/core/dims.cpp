#include "unet/core/dims.h"

#include <sstream>
#include <stdexcept>

namespace unet {

int64_t product(const Dims& d) {
    int64_t p = 1;
    for (auto v : d) p *= v;
    return p;
}

std::string shape_text(const Dims& d) {
    const char* names = d.size() == 3 ? "D x H x W" : d.size() == 2 ? "H x W" : "size";
    return std::string(names) + " = " + dims_text(d, " x ");
}

std::string dims_text(const Dims& d, const char* sep) {
    std::string s;
    for (size_t i = 0; i < d.size(); ++i) s += (i ? sep : "") + std::to_string(d[i]);
    return s;
}

bool parse_dims(const std::string& text, Dims* out) {
    out->clear();
    std::istringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
        try {
            size_t used = 0;
            const long long v = std::stoll(item, &used);
            if (used != item.size() || v <= 0) return false;
            out->push_back(v);
        } catch (const std::exception&) {
            return false;
        }
    }
    return !out->empty();
}

}  // namespace unet
