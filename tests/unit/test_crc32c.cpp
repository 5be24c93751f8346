// CRC-32C and TensorBoard's masked form: the standard check value, RFC 3720's iSCSI vectors,
// incremental use, and the framing of one record byte for byte as TensorBoard's own RecordWriter
// writes it.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "unet/log/crc32c.h"
#include "unet/log/records.h"

using namespace unet;

TEST(Crc32c, StandardCheckValue) {
    const std::string s = "123456789";
    EXPECT_EQ(crc32c(s.data(), s.size()), 0xE3069283u);
    EXPECT_EQ(crc32c(nullptr, 0), 0u);
}

// RFC 3720 appendix B.4 (iSCSI) test vectors.
TEST(Crc32c, Rfc3720Vectors) {
    std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF), up(32), down(32);
    for (int i = 0; i < 32; ++i) up[size_t(i)] = uint8_t(i), down[size_t(i)] = uint8_t(31 - i);
    EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
    EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
    EXPECT_EQ(crc32c(up.data(), 32), 0x46DD794Eu);
    EXPECT_EQ(crc32c(down.data(), 32), 0x113FDB5Cu);
}

TEST(Crc32c, ContinuesOverPieces) {
    const std::string s = "The quick brown fox jumps over the lazy dog";
    for (size_t cut = 0; cut <= s.size(); cut += 7)
        EXPECT_EQ(crc32c(s.data() + cut, s.size() - cut, crc32c(s.data(), cut)), crc32c(s.data(), s.size())) << cut;
}

TEST(Crc32c, MaskRoundTripsAndMatchesTensorBoard) {
    for (uint32_t c : {0u, 1u, 0xE3069283u, 0xFFFFFFFFu, 0x80000000u}) EXPECT_EQ(unmask_crc32c(mask_crc32c(c)), c);
    const std::string s = "123456789";
    // Values printed by TensorBoard's masked_crc32c (tensorboard.compat.tensorflow_stub).
    EXPECT_EQ(masked_crc32c(s.data(), s.size()), 0xc78ab0e5u);
    EXPECT_EQ(masked_crc32c("", 0), 0xa282ead8u);
}

TEST(Records, FramingMatchesTensorBoardsRecordWriter) {
    // tensorboard.summary.writer.record_writer.RecordWriter(...).write(b"hello"), as hex.
    const std::string expected_hex = "0500000000000000eab2043e68656c6c6fbb1f1c19";
    const std::string framed = frame_record("hello");
    std::string hex;
    for (unsigned char c : framed) {
        const char* digits = "0123456789abcdef";
        hex += digits[c >> 4];
        hex += digits[c & 15];
    }
    EXPECT_EQ(hex, expected_hex);
}
