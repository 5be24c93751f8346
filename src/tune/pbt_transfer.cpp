#include "unet/tune/pbt_transfer.h"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "unet/io/atomic_file.h"
#include "unet/parallel/comm.h"

namespace fs = std::filesystem;

namespace unet {

namespace {

const char* const kFiles[] = {"checkpoint_latest.h5", "checkpoint_best.h5"};

// The whole file, or false when there is none.
bool read_bytes(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream os;
    os << in.rdbuf();
    if (in.bad()) throw std::runtime_error("pbt exploit: cannot read " + path);
    out = os.str();
    return true;
}

}  // namespace

uint64_t pbt_checksum(const std::string& bytes) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
    return h;
}

uint64_t pbt_file_checksum(const std::string& path) {
    std::string bytes;
    return read_bytes(path, bytes) ? pbt_checksum(bytes) : 0;
}

std::string pbt_pack_checkpoint(const std::string& dir) {
    std::string message;
    for (const char* name : kFiles) {
        std::string bytes;
        const std::string path = dir + "/" + name;
        if (!read_bytes(path, bytes)) {
            if (name == std::string(kFiles[0])) throw std::runtime_error("pbt exploit: no " + path);
            message += std::string(name) + " -1\n";
            continue;
        }
        message += std::string(name) + " " + std::to_string(bytes.size()) + "\n" + bytes;
    }
    return message;
}

PbtReceived pbt_unpack_checkpoint(const std::string& message, const std::string& dir) {
    if (message.rfind("error ", 0) == 0) throw std::runtime_error(message.substr(6));
    // The whole message is checked before any file is written: a message cut short changes nothing.
    struct Part {
        const char* name;
        long long size;
        size_t at;
    };
    std::vector<Part> parts;
    size_t at = 0;
    for (const char* name : kFiles) {
        const size_t eol = message.find('\n', at);
        std::istringstream head(eol == std::string::npos ? std::string() : message.substr(at, eol - at));
        std::string got_name;
        long long size = -2;
        if (!(head >> got_name >> size) || got_name != name || size < -1 ||
            (size > 0 && uint64_t(size) > message.size() - eol - 1))
            throw std::runtime_error("pbt exploit: malformed checkpoint message (expected " + std::string(name) + " <size>)");
        parts.push_back({name, size, eol + 1});
        at = eol + 1 + size_t(std::max(size, 0ll));
    }
    if (at != message.size()) throw std::runtime_error("pbt exploit: malformed checkpoint message (bytes left over)");
    PbtReceived got;
    std::error_code ec;
    fs::create_directories(dir, ec);
    for (const Part& part : parts) {
        const std::string path = dir + "/" + part.name;
        if (part.size < 0) {
            fs::remove(path, ec);  // the donor has none: neither has the recipient
            continue;
        }
        write_file_atomically(path, message.data() + part.at, size_t(part.size));
        got.bytes += uint64_t(part.size);
    }
    got.checksum = pbt_file_checksum(dir + "/" + kFiles[0]);
    return got;
}

uint64_t pbt_send_checkpoint(Comm& world, int to, int tag, const std::string& dir) {
    std::string message;
    try {
        message = pbt_pack_checkpoint(dir);
    } catch (const std::exception& e) {
        world.send_text(to, tag, std::string("error ") + e.what());
        throw;
    }
    // One MPI message counts its bytes in an int.
    if (message.size() > size_t(INT_MAX)) {
        const std::string why = "pbt exploit: the checkpoint in " + dir + " is over 2 GiB, more than one MPI message carries";
        world.send_text(to, tag, "error " + why);
        throw std::runtime_error(why);
    }
    world.send_text(to, tag, message);
    // The checksum of what went out: the latest file's bytes, the first field of the message.
    const size_t space = message.find(' '), eol = message.find('\n');
    const size_t size = std::stoull(message.substr(space + 1, eol - space - 1));
    return pbt_checksum(message.substr(eol + 1, size));
}

PbtReceived pbt_receive_checkpoint(Comm& world, int from, int tag, const std::string& dir) {
    return pbt_unpack_checkpoint(world.receive_text(from, tag), dir);
}

}  // namespace unet
