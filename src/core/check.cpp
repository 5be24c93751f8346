#include "unet/core/check.h"

namespace unet {

void fail_invariant(const char* file, int line, const std::string& what) {
    std::ostringstream os;
    os << "internal error at " << file << ":" << line << ": " << what;
    throw std::logic_error(os.str());
}

}  // namespace unet
