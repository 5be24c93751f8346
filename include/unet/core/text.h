// Small string tests shared across floors.
#pragma once

#include <cstdio>
#include <string>

namespace unet {

inline bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// v with `digits` decimals ("%.*f").
inline std::string fixed_text(double v, int digits) {
    char text[48];
    std::snprintf(text, sizeof text, "%.*f", digits, v);
    return text;
}

}  // namespace unet
