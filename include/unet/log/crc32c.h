// CRC-32C (Castagnoli polynomial, reflected 0x82F63B78, initial value and final xor 0xFFFFFFFF),
// the checksum of TensorBoard's record framing, and the "masked" form that framing stores:
// rotate right by 15 bits, add 0xa282ead8 (so that a CRC computed over data that itself holds CRCs
// does not degenerate). Check value: crc32c("123456789") == 0xE3069283.
#pragma once

#include <cstddef>
#include <cstdint>

namespace unet {

// CRC-32C of `n` bytes; `crc` continues a previous result over the bytes that came before.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

inline uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
inline uint32_t unmask_crc32c(uint32_t masked) {
    const uint32_t rotated = masked - 0xa282ead8u;
    return (rotated >> 17) | (rotated << 15);
}
inline uint32_t masked_crc32c(const void* data, size_t n) { return mask_crc32c(crc32c(data, n)); }

}  // namespace unet
