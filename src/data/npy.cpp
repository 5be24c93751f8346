#include "unet/data/npy.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace unet {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "npy.cpp reads and writes little-endian data by plain copies");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
// numpy pads the header so the data starts on a 64-byte boundary (numpy.lib.format.ARRAY_ALIGN).
constexpr size_t kAlign = 64;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw std::runtime_error(path + ": " + what);
}

struct FileCloser {
    void operator()(std::FILE* f) const {
        if (f) std::fclose(f);
    }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// Shows a header value in an error message on one line, shortened.
std::string quote(const std::string& s) {
    std::string out;
    for (char c : s) out += (c == '\n' || c == '\r') ? ' ' : c;
    if (out.size() > 80) out = out.substr(0, 77) + "...";
    return out;
}

// Parses the Python dict literal numpy writes:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// Only what numpy.lib.format produces (and older files with 3L-style longs) is accepted.
class HeaderParser {
   public:
    HeaderParser(const std::string& path, const std::string& text) : path_(path), s_(text) {}

    void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
        bool have_descr = false, have_fortran = false, have_shape = false;
        skip_ws();
        expect('{');
        for (;;) {
            skip_ws();
            if (peek() == '}') {
                ++i_;
                break;
            }
            const std::string key = parse_string();
            skip_ws();
            expect(':');
            skip_ws();
            if (key == "descr") {
                if (peek() != '\'' && peek() != '"')
                    fail(path_, "structured dtype " + quote(raw_value()) +
                                    " not supported (expected '<f4', '<f8' or '|u1')");
                descr = parse_string();
                have_descr = true;
            } else if (key == "fortran_order") {
                const std::string v = parse_word();
                if (v == "True")
                    fortran = true;
                else if (v == "False")
                    fortran = false;
                else
                    bad("fortran_order " + quote(v));
                have_fortran = true;
            } else if (key == "shape") {
                shape = parse_shape();
                have_shape = true;
            } else {
                bad("unexpected key '" + quote(key) + "'");
            }
            skip_ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            skip_ws();
            expect('}');
            break;
        }
        if (!have_descr || !have_fortran || !have_shape)
            bad(std::string("missing key '") + (!have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape") +
                "'");
    }

   private:
    [[noreturn]] void bad(const std::string& what) const {
        fail(path_, "malformed .npy header (" + what + "): " + quote(s_));
    }
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    void skip_ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
    }
    void expect(char c) {
        if (peek() != c) bad(std::string("expected '") + c + "'");
        ++i_;
    }
    std::string parse_string() {
        const char q = peek();
        if (q != '\'' && q != '"') bad("expected a string");
        ++i_;
        const size_t start = i_;
        while (i_ < s_.size() && s_[i_] != q) ++i_;
        if (i_ >= s_.size()) bad("unterminated string");
        return s_.substr(start, i_++ - start);
    }
    std::string parse_word() {
        const size_t start = i_;
        while (i_ < s_.size() && std::isalnum(static_cast<unsigned char>(s_[i_]))) ++i_;
        return s_.substr(start, i_ - start);
    }
    // A bracketed value we do not support (a structured dtype list), for the error message.
    std::string raw_value() {
        const size_t start = i_;
        int depth = 0;
        for (; i_ < s_.size(); ++i_) {
            const char c = s_[i_];
            if (c == '[' || c == '(' || c == '{') ++depth;
            if (c == ']' || c == ')' || c == '}') --depth;
            if (depth <= 0 && (c == ']' || c == ',')) break;
        }
        return s_.substr(start, i_ + 1 - start);
    }
    std::vector<int64_t> parse_shape() {
        std::vector<int64_t> shape;
        expect('(');
        for (;;) {
            skip_ws();
            if (peek() == ')') {
                ++i_;
                return shape;
            }
            if (!std::isdigit(static_cast<unsigned char>(peek()))) bad("shape entry is not a non-negative integer");
            int64_t v = 0;
            while (std::isdigit(static_cast<unsigned char>(peek()))) {
                if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) bad("shape entry too large");
                v = v * 10 + (s_[i_++] - '0');
            }
            if (peek() == 'L') ++i_;  // Python 2 long
            shape.push_back(v);
            skip_ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            skip_ws();
            expect(')');
            return shape;
        }
    }

    const std::string& path_;
    const std::string& s_;
    size_t i_ = 0;
};

std::string shape_string(const std::vector<int64_t>& shape) {
    std::ostringstream os;
    os << "(";
    for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    if (shape.size() == 1) os << ",";
    os << ")";
    return os.str();
}

int64_t element_count(const std::string& path, const std::vector<int64_t>& shape, int64_t item_size) {
    int64_t n = 1;
    for (int64_t d : shape) {
        if (d < 0) fail(path, "negative dimension in shape " + shape_string(shape));
        if (d != 0 && n > std::numeric_limits<int64_t>::max() / item_size / d)
            fail(path, "shape " + shape_string(shape) + " is too large");
        n *= d;
    }
    return n;
}

template <typename T>
void read_converted(std::FILE* f, const std::string& path, float* out, int64_t count) {
    constexpr int64_t kBlock = int64_t(1) << 16;
    std::vector<T> buf(size_t(std::min(count, kBlock)));
    for (int64_t done = 0; done < count;) {
        const int64_t n = std::min(kBlock, count - done);
        if (std::fread(buf.data(), sizeof(T), size_t(n), f) != size_t(n))
            fail(path, "read error after " + std::to_string(done) + " elements");
        for (int64_t i = 0; i < n; ++i) out[done + i] = static_cast<float>(buf[size_t(i)]);
        done += n;
    }
}

}  // namespace

NpyArray read_npy(const std::string& path) {
    File f(std::fopen(path.c_str(), "rb"));
    if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
    if (std::fseek(f.get(), 0, SEEK_END) != 0) fail(path, std::string("cannot seek: ") + std::strerror(errno));
    const long file_size_l = std::ftell(f.get());
    if (file_size_l < 0) fail(path, std::string("cannot tell size: ") + std::strerror(errno));
    const int64_t file_size = file_size_l;
    std::rewind(f.get());

    unsigned char pre[kMagicLen + 2];
    if (file_size < int64_t(sizeof pre) || std::fread(pre, 1, sizeof pre, f.get()) != sizeof pre ||
        std::memcmp(pre, kMagic, kMagicLen) != 0)
        fail(path, "not a .npy file (bad magic; expected \\x93NUMPY)");
    const int major = pre[kMagicLen], minor = pre[kMagicLen + 1];
    if (!((major == 1 || major == 2 || major == 3) && minor == 0))
        fail(path, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                       " (supported: 1.0, 2.0, 3.0)");
    const size_t len_bytes = major == 1 ? 2 : 4;
    unsigned char lb[4] = {0, 0, 0, 0};
    if (std::fread(lb, 1, len_bytes, f.get()) != len_bytes) fail(path, "truncated .npy header");
    const int64_t header_len = int64_t(lb[0]) | int64_t(lb[1]) << 8 | int64_t(lb[2]) << 16 | int64_t(lb[3]) << 24;
    const int64_t data_offset = int64_t(sizeof pre + len_bytes) + header_len;
    if (data_offset > file_size)
        fail(path, "truncated .npy header (header length " + std::to_string(header_len) + ", file size " +
                       std::to_string(file_size) + ")");
    std::string header(size_t(header_len), '\0');
    if (header_len > 0 && std::fread(&header[0], 1, size_t(header_len), f.get()) != size_t(header_len))
        fail(path, "truncated .npy header");

    NpyArray a;
    bool fortran = false;
    HeaderParser(path, header).parse(a.dtype, fortran, a.shape);

    int64_t item = 0;
    if (a.dtype == "<f4")
        item = 4;
    else if (a.dtype == "<f8")
        item = 8;
    else if (a.dtype == "|u1" || a.dtype == "<u1")
        item = 1;
    else if (!a.dtype.empty() && a.dtype[0] == '>')
        fail(path, "big-endian dtype '" + quote(a.dtype) + "' not supported (expected '<f4', '<f8' or '|u1')");
    else
        fail(path, "dtype '" + quote(a.dtype) + "' not supported (expected '<f4', '<f8' or '|u1')");
    if (fortran)
        fail(path, "fortran_order True not supported (expected C order; save with np.ascontiguousarray)");

    const int64_t count = element_count(path, a.shape, item);
    const int64_t have = file_size - data_offset;
    if (have < count * item)
        fail(path, "truncated data: shape " + shape_string(a.shape) + " '" + a.dtype + "' needs " +
                       std::to_string(count * item) + " bytes, file has " + std::to_string(have));

    a.data.resize(size_t(count));
    if (item == 4) {
        if (count > 0 && std::fread(a.data.data(), 4, size_t(count), f.get()) != size_t(count))
            fail(path, "read error in data");
    } else if (item == 8) {
        read_converted<double>(f.get(), path, a.data.data(), count);
    } else {
        read_converted<uint8_t>(f.get(), path, a.data.data(), count);
    }
    return a;
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
    const int64_t count = element_count(path, shape, 4);
    if (count > 0 && data == nullptr) fail(path, "write_npy: null data for shape " + shape_string(shape));

    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_string(shape) + ", }";
    const size_t prefix = kMagicLen + 2 + 2;
    const size_t total = (prefix + header.size() + 1 + kAlign - 1) / kAlign * kAlign;
    header.append(total - prefix - header.size() - 1, ' ');
    header += '\n';
    if (header.size() > 65535) fail(path, "write_npy: header too long for format 1.0");

    File f(std::fopen(path.c_str(), "wb"));
    if (!f) fail(path, std::string("cannot create: ") + std::strerror(errno));
    unsigned char pre[prefix];
    std::memcpy(pre, kMagic, kMagicLen);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = static_cast<unsigned char>(header.size() & 0xff);
    pre[9] = static_cast<unsigned char>(header.size() >> 8);
    if (std::fwrite(pre, 1, prefix, f.get()) != prefix ||
        std::fwrite(header.data(), 1, header.size(), f.get()) != header.size() ||
        (count > 0 && std::fwrite(data, 4, size_t(count), f.get()) != size_t(count)))
        fail(path, std::string("write failed: ") + std::strerror(errno));
    if (std::fclose(f.release()) != 0) fail(path, std::string("write failed: ") + std::strerror(errno));
}

}  // namespace unet
