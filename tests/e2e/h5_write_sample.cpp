// Helper for tests/e2e/h5py_dataset.sh: drives our HDF5 dataset writer/reader and .npy reader so
// that h5py and numpy can check them from the outside.
//
//   h5_write_sample write OUT.h5 3d|2d      a dataset whose values follow formula() below
//   h5_write_sample read IN.h5 OUT_DIR      every split as OUT_DIR/<split>_{images,masks}.npy,
//                                           <split>_case_ids.txt, and attrs.txt
//   h5_write_sample npy IN.npy OUT.bin      prints "dtype shape", writes read_npy's floats raw
//   h5_write_sample write-npy OUT.npy       write_npy of formula values, shape (2, 3, 4)
//   h5_write_sample bench DIR [big]         write/read throughput of 2D and 3D samples
// Errors: the exception's message on stderr, exit code 1.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "unet/data/hdf5_dataset.h"
#include "unet/data/npy.h"

using namespace unet;

namespace {

const char* const kSplits[] = {"train", "val", "test"};

// The same formulas are in h5py_dataset.sh; every value is exact in float32.
float formula(int split_no, int64_t index, int64_t k) {
    return float((k * 37 + index * 101 + split_no * 1009) % 2001 - 1000) / 64.f;
}
uint8_t mask_formula(int split_no, int64_t index, int64_t k) { return uint8_t((k + index + split_no) % 3 == 0); }
std::string case_formula(int split_no, int64_t index) {
    return (index == 1 ? "BraTS_µ_" : "BRATS_") + std::to_string(split_no * 100 + index);
}

int64_t product(const std::vector<int64_t>& v) {
    return std::accumulate(v.begin(), v.end(), int64_t(1), std::multiplies<int64_t>());
}

int cmd_write(const std::string& out, const std::string& mode) {
    DatasetAttributes a;
    a.mode = mode;
    a.channels = mode == "3d" ? 4 : 3;
    a.crop = mode == "3d" ? "depth 2..154" : "";
    a.split_seed = -1234567890123LL;
    a.source = "h5_write_sample e2e";
    a.labels = R"({"0": "background", "1": "tumour"})";
    const std::vector<int64_t> spatial = mode == "3d" ? std::vector<int64_t>{5, 8, 7} : std::vector<int64_t>{9, 11};
    const std::vector<int64_t> counts = {3, 2, 0};
    const int64_t v = product(spatial);
    DatasetWriter w(out, a, spatial);
    for (int s = 0; s < 3; ++s) w.add_split(kSplits[s], counts[size_t(s)]);
    std::vector<float> image(static_cast<size_t>(a.channels * v));
    std::vector<uint8_t> mask(static_cast<size_t>(v));
    for (int s = 0; s < 3; ++s)
        for (int64_t i = 0; i < counts[size_t(s)]; ++i) {
            for (int64_t k = 0; k < a.channels * v; ++k) image[size_t(k)] = formula(s, i, k);
            for (int64_t k = 0; k < v; ++k) mask[size_t(k)] = mask_formula(s, i, k);
            w.write_sample(kSplits[s], i, image.data(), mask.data(), case_formula(s, i));
        }
    w.finish();
    std::cout << "wrote " << out << " (" << w.bytes_written() << " bytes)\n";
    return 0;
}

int cmd_read(const std::string& in, const std::string& dir) {
    DatasetReader r(in);
    const DatasetAttributes& a = r.attributes();
    std::ofstream attrs(dir + "/attrs.txt");
    attrs << "mode=" << a.mode << "\nchannels=" << a.channels << "\nnormalization=" << a.normalization
          << "\ncrop=" << a.crop << "\nsplit_seed=" << a.split_seed << "\nsource=" << a.source
          << "\nlabels=" << a.labels << "\nspatial=";
    for (size_t i = 0; i < r.spatial().size(); ++i) attrs << (i ? "," : "") << r.spatial()[i];
    attrs << "\n";
    const int64_t v = product(r.spatial());
    for (const char* s : kSplits) {
        if (!r.has_split(s)) continue;
        const int64_t n = r.count(s);
        std::vector<float> images(static_cast<size_t>(n * r.channels() * v)), masks(static_cast<size_t>(n * v));
        std::ofstream ids(dir + "/" + s + "_case_ids.txt");
        for (int64_t i = 0; i < n; ++i) {
            r.read_sample(s, i, images.data() + i * r.channels() * v, masks.data() + i * v);
            ids << r.case_id(s, i) << "\n";
        }
        std::vector<int64_t> ishape{n, r.channels()}, mshape{n, 1};
        for (int64_t d : r.spatial()) {
            ishape.push_back(d);
            mshape.push_back(d);
        }
        write_npy(dir + "/" + s + "_images.npy", ishape, images.data());
        write_npy(dir + "/" + s + "_masks.npy", mshape, masks.data());
    }
    return 0;
}

int cmd_npy(const std::string& in, const std::string& out) {
    const NpyArray a = read_npy(in);
    std::cout << a.dtype << " ";
    for (size_t i = 0; i < a.shape.size(); ++i) std::cout << (i ? "," : "") << a.shape[i];
    std::cout << "\n";
    std::FILE* f = std::fopen(out.c_str(), "wb");
    if (!f || std::fwrite(a.data.data(), 4, a.data.size(), f) != a.data.size() || std::fclose(f) != 0)
        throw std::runtime_error(out + ": cannot write");
    return 0;
}

int cmd_write_npy(const std::string& out) {
    std::vector<float> x(24);
    for (int64_t k = 0; k < 24; ++k) x[size_t(k)] = formula(0, 0, k);
    write_npy(out, {2, 3, 4}, x.data());
    return 0;
}

// ---- throughput ----

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A brain-like sample: an ellipsoid of smooth signal plus noise (z-scored: mean 0, sd about 1),
// zeros outside it, and a small "tumour" ellipsoid in the mask. Compresses like real data (the
// background to almost nothing, the noisy brain by about 1.2x).
void synthetic(int64_t seed, int channels, const std::vector<int64_t>& spatial, std::vector<float>& image,
               std::vector<uint8_t>& mask) {
    const int64_t D = spatial.size() == 3 ? spatial[0] : 1, H = spatial[spatial.size() - 2], W = spatial.back();
    const int64_t v = D * H * W;
    image.assign(static_cast<size_t>(channels * v), 0.f);
    mask.assign(static_cast<size_t>(v), 0);
    std::mt19937 rng{static_cast<uint32_t>(seed)};
    std::normal_distribution<float> noise(0.f, 0.3f);
    const double tz = 0.5 + 0.1 * std::sin(double(seed)), ty = 0.45, tx = 0.55;
    for (int64_t d = 0; d < D; ++d)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t w = 0; w < W; ++w) {
                const double z = D > 1 ? (d + 0.5) / D - 0.5 : 0.0, y = (h + 0.5) / H - 0.5, x = (w + 0.5) / W - 0.5;
                if (z * z / 0.16 + y * y / 0.2 + x * x / 0.16 > 1.0) continue;
                const int64_t at = (d * H + h) * W + w;
                const double dz = D > 1 ? (d + 0.5) / D - tz : 0.0, dy = (h + 0.5) / H - ty, dx = (w + 0.5) / W - tx;
                const bool tumour = dz * dz + dy * dy + dx * dx < 0.01;
                mask[size_t(at)] = tumour;
                for (int c = 0; c < channels; ++c)
                    image[size_t(c * v + at)] =
                        float(std::sin(7 * x + c) * std::cos(5 * y) + (tumour ? 1.5 : 0.0)) + noise(rng);
            }
}

void bench_one(const std::string& path, const std::string& label, int channels, const std::vector<int64_t>& spatial,
               int64_t n, int passes) {
    const int64_t v = product(spatial);
    const double sample_mb = double(channels * v * 4 + v) / 1e6;
    DatasetAttributes a;
    a.mode = spatial.size() == 3 ? "3d" : "2d";
    a.channels = channels;
    std::vector<std::vector<float>> images(4);
    std::vector<std::vector<uint8_t>> masks(4);
    for (int i = 0; i < 4; ++i) synthetic(i, channels, spatial, images[size_t(i)], masks[size_t(i)]);
    auto t0 = Clock::now();
    int64_t bytes = 0;
    {
        DatasetWriter w(path, a, spatial);
        w.add_split("train", n);
        for (int64_t i = 0; i < n; ++i)
            w.write_sample("train", i, images[size_t(i % 4)].data(), masks[size_t(i % 4)].data(), "c" + std::to_string(i));
        w.finish();
        bytes = w.bytes_written();
    }
    const double write_s = seconds_since(t0);

    DatasetReader r(path);
    std::vector<float> image(static_cast<size_t>(channels * v)), mask(static_cast<size_t>(v));
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    r.read_sample("train", 0, image.data(), mask.data());  // warm the page cache and the library
    t0 = Clock::now();
    for (int p = 0; p < passes; ++p)
        for (int64_t i : order) r.read_sample("train", i, image.data(), mask.data());
    const double read_s = seconds_since(t0);
    if (std::memcmp(image.data(), images[size_t(order.back() % 4)].data(), image.size() * 4) != 0)
        throw std::runtime_error("bench: read back different values");
    const double reads = double(n * passes);
    std::printf("%-22s sample %7.2f MB  file %8.1f MB (ratio %.2f)  write %8.1f samples/s  read %8.1f samples/s"
                "  (%6.0f MB/s, %.3f ms/sample)\n",
                label.c_str(), sample_mb, bytes / 1e6, sample_mb * double(n) / (bytes / 1e6), double(n) / write_s,
                reads / read_s, reads * sample_mb / read_s, 1e3 * read_s / reads);
    if (!std::getenv("KEEP")) std::remove(path.c_str());
}

int cmd_bench(const std::string& dir, bool big) {
    bench_one(dir + "/bench2d.h5", "2d 4x128x128", 4, {128, 128}, 512, 4);
    bench_one(dir + "/bench3d.h5", "3d 4x64x64x64", 4, {64, 64, 64}, 32, 4);
    if (big) bench_one(dir + "/bench_big.h5", "3d 4x152x240x240", 4, {152, 240, 240}, 4, 2);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string cmd = argc > 1 ? argv[1] : "";
        if (cmd == "write" && argc == 4) return cmd_write(argv[2], argv[3]);
        if (cmd == "read" && argc == 4) return cmd_read(argv[2], argv[3]);
        if (cmd == "npy" && argc == 4) return cmd_npy(argv[2], argv[3]);
        if (cmd == "write-npy" && argc == 3) return cmd_write_npy(argv[2]);
        if (cmd == "bench" && (argc == 3 || argc == 4)) return cmd_bench(argv[2], argc == 4);
        std::cerr << "usage: h5_write_sample write OUT.h5 3d|2d | read IN.h5 DIR | npy IN.npy OUT.bin | "
                     "write-npy OUT.npy | bench DIR [big]\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
