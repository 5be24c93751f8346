#include "unet/log/records.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "unet/log/crc32c.h"

namespace unet {

namespace {

void put_le(std::string& out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(char((v >> (8 * i)) & 0xFFu));
}

uint64_t get_le(const std::string& in, size_t at, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t(uint8_t(in[at + size_t(i)])) << (8 * i);
    return v;
}

}  // namespace

std::string frame_record(const std::string& data) {
    std::string out;
    out.reserve(data.size() + kRecordOverhead);
    put_le(out, data.size(), 8);
    put_le(out, masked_crc32c(out.data(), 8), 4);
    out += data;
    put_le(out, masked_crc32c(data.data(), data.size()), 4);
    return out;
}

RecordScan scan_records(const std::string& bytes) {
    RecordScan scan;
    scan.file_bytes = bytes.size();
    size_t at = 0;
    while (at < bytes.size()) {
        const size_t left = bytes.size() - at;
        if (left < 12) {
            scan.torn_tail = true;
            break;
        }
        const uint64_t length = get_le(bytes, at, 8);
        if (uint32_t(get_le(bytes, at + 8, 4)) != masked_crc32c(bytes.data() + at, 8)) {
            scan.corruption = "length CRC mismatch in the record at byte " + std::to_string(at);
            break;
        }
        if (left < kRecordOverhead || length > left - kRecordOverhead) {
            scan.torn_tail = true;
            break;
        }
        const std::string data = bytes.substr(at + 12, size_t(length));
        if (uint32_t(get_le(bytes, at + 12 + size_t(length), 4)) != masked_crc32c(data.data(), data.size())) {
            scan.corruption = "data CRC mismatch in the record at byte " + std::to_string(at);
            break;
        }
        scan.records.push_back(data);
        at += size_t(length) + kRecordOverhead;
        scan.intact_bytes = at;
    }
    return scan;
}

RecordScan read_records(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open for reading");
    std::ostringstream all;
    all << in.rdbuf();
    if (in.bad()) throw std::runtime_error(path + ": read failed");
    return scan_records(all.str());
}

}  // namespace unet
