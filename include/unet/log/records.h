// TensorBoard's record framing (TFRecord), used by event files:
//   uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
// all little-endian. frame_record builds one record; read_records is our own reader, which checks
// both CRCs of every record (the tests read our files back with it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

constexpr size_t kRecordOverhead = 8 + 4 + 4;

// The framed bytes of one record holding `data`.
std::string frame_record(const std::string& data);

struct RecordScan {
    std::vector<std::string> records;  // every whole, intact record, in order
    uint64_t intact_bytes = 0;         // bytes up to the end of the last intact record
    uint64_t file_bytes = 0;
    bool torn_tail = false;  // the file ends inside a record (a crash mid-write): not corruption
    std::string corruption;  // non-empty: a CRC mismatch, naming the offset; reading stopped there
    bool clean() const { return !torn_tail && corruption.empty(); }
};

// Parses framed records from `bytes`, stopping at the first torn or corrupt one.
RecordScan scan_records(const std::string& bytes);
// Reads the file and scans it; throws std::runtime_error naming the path if it cannot be read.
RecordScan read_records(const std::string& path);

}  // namespace unet
