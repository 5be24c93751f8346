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

// Boost.Program_options 1.74 writes its error messages by replacing %value%, %option%, ... until
// none is left, so a flag, value or settings line holding one of those tokens makes the message
// loop for ever (found by tests/fuzz: `unet_train --epochs %value%` hung). The parsers refuse such
// text first, naming `where`.
inline void refuse_option_placeholders(const std::string& text, const std::string& where) {
    for (const char* token : {"%value%", "%option%", "%canonical_option%", "%prefix_option%", "%original_token%"})
        if (text.find(token) != std::string::npos)
            throw UsageError(where + "'" + token + "' cannot be used in a flag, value or settings line");
}

}  // namespace unet
