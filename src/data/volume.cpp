#include "unet/data/volume.h"

namespace unet {

std::string Volume::shape_string() const {
    return std::to_string(channels) + "x" + std::to_string(depth) + "x" + std::to_string(height) + "x" +
           std::to_string(width);
}

}  // namespace unet
