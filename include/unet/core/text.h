// Small string tests shared across floors.
#pragma once

#include <cstdio>
#include <string>

#include "unet/core/check.h"

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

// Boost.Program_options 1.74 writes its error messages by replacing %value%, %option%,
// %invalid_line%, ... until none is left, so a flag, value or settings line holding such a token
// makes the message loop for ever (found by tests/fuzz: `unet_train --epochs %value%` hung, and a
// settings line holding %invalid_line%). Any %name% (lower-case letters and '_') is refused first,
// naming `where`: the library's list of names is its own business.
inline void refuse_option_placeholders(const std::string& text, const std::string& where) {
    for (size_t open = text.find('%'); open != std::string::npos; open = text.find('%', open + 1)) {
        size_t end = open + 1;
        while (end < text.size() && ((text[end] >= 'a' && text[end] <= 'z') || text[end] == '_')) ++end;
        if (end > open + 1 && end < text.size() && text[end] == '%')
            throw UsageError(where + "'" + text.substr(open, end - open + 1) +
                             "' cannot be used in a flag, value or settings line");
    }
}

}  // namespace unet
