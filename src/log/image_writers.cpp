#include "unet/log/image_writers.h"

#include <gif_lib.h>
#include <fcntl.h>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace unet {

namespace {

void png_append(png_structp png, png_bytep data, png_size_t length) {
    auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
    out->insert(out->end(), data, data + length);
}
void png_flush_noop(png_structp) {}
[[noreturn]] void png_throw(png_structp, png_const_charp msg) { throw std::runtime_error(std::string("libpng: ") + msg); }
void png_warn_quiet(png_structp, png_const_charp) {}

}  // namespace

std::vector<uint8_t> encode_png(const RgbImage& img) {
    if (img.width <= 0 || img.height <= 0) throw std::runtime_error("encode_png: empty image");
    std::vector<uint8_t> out;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, png_throw, png_warn_quiet);
    if (!png) throw std::runtime_error("libpng: cannot create a write struct");
    png_infop info = png_create_info_struct(png);
    try {
        if (!info) throw std::runtime_error("libpng: cannot create an info struct");
        png_set_write_fn(png, &out, png_append, png_flush_noop);
        png_set_IHDR(png, info, png_uint_32(img.width), png_uint_32(img.height), 8, PNG_COLOR_TYPE_RGB,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int y = 0; y < img.height; ++y)
            png_write_row(png, const_cast<png_bytep>(img.rgb.data() + size_t(y) * size_t(img.width) * 3));
        png_write_end(png, nullptr);
    } catch (...) {
        png_destroy_write_struct(&png, &info);
        throw;
    }
    png_destroy_write_struct(&png, &info);
    return out;
}

void write_png(const std::string& path, const RgbImage& img) {
    const std::vector<uint8_t> bytes = encode_png(img);
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error(path + ": cannot open for writing");
    const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
    if (std::fclose(f) != 0 || n != bytes.size()) throw std::runtime_error(path + ": write failed");
}

namespace {

constexpr int kGreys = 224, kTints = 16;

// Nearest palette entry: pure grey, or a red / green tint when one channel clearly dominates.
uint8_t palette_index(const uint8_t* p) {
    const int r = p[0], g = p[1], b = p[2];
    if (r > g + 40 && r > b + 40) return uint8_t(kGreys + std::min(kTints - 1, r * kTints / 256));
    if (g > r + 40 && g > b + 40) return uint8_t(kGreys + kTints + std::min(kTints - 1, g * kTints / 256));
    return uint8_t(std::min(kGreys - 1, ((r + g + b) / 3) * kGreys / 256));
}

}  // namespace

void write_gif(const std::string& path, const std::vector<RgbImage>& frames, int delay) {
    if (frames.empty()) throw std::runtime_error(path + ": no frames to write");
    const int W = frames[0].width, H = frames[0].height;
    GifColorType colors[256];
    for (int i = 0; i < kGreys; ++i) colors[i] = {uint8_t(i * 255 / (kGreys - 1)), uint8_t(i * 255 / (kGreys - 1)), uint8_t(i * 255 / (kGreys - 1))};
    for (int i = 0; i < kTints; ++i) {
        const uint8_t v = uint8_t(64 + i * 191 / (kTints - 1));
        colors[kGreys + i] = {v, uint8_t(v / 4), uint8_t(v / 4)};
        colors[kGreys + kTints + i] = {uint8_t(v / 4), v, uint8_t(v / 4)};
    }
    int err = 0;
    // Opened here with 0666 (less the umask), as fopen makes the PNGs: giflib's own open makes 0600.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) throw std::runtime_error(path + ": cannot open for writing (" + std::strerror(errno) + ")");
    GifFileType* gif = EGifOpenFileHandle(fd, &err);  // closed by EGifCloseFile
    if (!gif) {
        ::close(fd);
        throw std::runtime_error(path + ": cannot open for writing (" + GifErrorString(err) + ")");
    }
    auto fail = [&](const char* what) {
        int e = 0;
        EGifCloseFile(gif, &e);
        std::remove(path.c_str());
        throw std::runtime_error(path + ": " + what);
    };
    ColorMapObject* map = GifMakeMapObject(256, colors);
    if (!map) fail("cannot make a colour map");
    EGifSetGifVersion(gif, true);
    const bool ok = EGifPutScreenDesc(gif, W, H, 8, 0, map) != GIF_ERROR;
    GifFreeMapObject(map);
    if (!ok) fail("cannot write the screen descriptor");
    // Netscape loop extension: play forever.
    const unsigned char nsle[11] = {'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0'};
    const unsigned char loop[3] = {1, 0, 0};
    if (EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) == GIF_ERROR ||
        EGifPutExtensionBlock(gif, 11, nsle) == GIF_ERROR || EGifPutExtensionBlock(gif, 3, loop) == GIF_ERROR ||
        EGifPutExtensionTrailer(gif) == GIF_ERROR)
        fail("cannot write the loop extension");
    std::vector<GifPixelType> line(static_cast<size_t>(W));
    for (const RgbImage& f : frames) {
        if (f.width != W || f.height != H) fail("frames differ in size");
        GraphicsControlBlock gcb{};
        gcb.DelayTime = delay;
        gcb.TransparentColor = NO_TRANSPARENT_COLOR;
        GifByteType ext[4];
        const size_t len = EGifGCBToExtension(&gcb, ext);
        if (EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, int(len), ext) == GIF_ERROR) fail("cannot write a frame delay");
        if (EGifPutImageDesc(gif, 0, 0, W, H, false, nullptr) == GIF_ERROR) fail("cannot write a frame descriptor");
        for (int y = 0; y < H; ++y) {
            for (int x = 0; x < W; ++x) line[size_t(x)] = palette_index(f.rgb.data() + (size_t(y) * size_t(W) + size_t(x)) * 3);
            if (EGifPutLine(gif, line.data(), W) == GIF_ERROR) fail("cannot write a frame line");
        }
    }
    if (EGifCloseFile(gif, &err) == GIF_ERROR) {
        std::remove(path.c_str());
        throw std::runtime_error(path + ": cannot finish the GIF (" + std::string(GifErrorString(err)) + ")");
    }
}

}  // namespace unet
