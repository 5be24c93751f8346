// Runs unet::sliding_window_predict for tests/reference/sliding_window_vs_monai.py: a seeded UNet,
// a random input volume, and the prediction under several window settings, all as .npy files.
//
//   sliding_window_dump OUT_DIR DIMS SIZE ROI FILTERS DEPTH NORM
//     e.g. sliding_window_dump /tmp/sw 3 20,40,36 16,16,16 4 2 batch
//
// Writes: config.txt (model), param.<name>.npy, buffer.<name>.npy, input.npy (1 x C x spatial),
// cases.txt (one line per case: name roi overlap blend sw_batch mirror), out.<name>.npy
// (1 x 1 x spatial), forward.npy (one plain forward over the whole input, when its size allows).
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "unet/data/npy.h"
#include "unet/infer/sliding_window.h"

namespace {

unet::Dims parse_dims(const std::string& s) {
    unet::Dims d;
    std::stringstream ss(s);
    std::string part;
    while (std::getline(ss, part, ',')) d.push_back(std::stoll(part));
    return d;
}

std::vector<int64_t> with_batch(int64_t n, int64_t c, const unet::Dims& spatial) {
    std::vector<int64_t> s{n, c};
    s.insert(s.end(), spatial.begin(), spatial.end());
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 8) {
        std::fprintf(stderr, "usage: sliding_window_dump OUT_DIR DIMS SIZE ROI FILTERS DEPTH NORM\n");
        return 2;
    }
    try {
        const std::string dir = argv[1];
        unet::UNetConfig cfg;
        cfg.dims = std::stoi(argv[2]);
        const unet::Dims size = parse_dims(argv[3]), roi = parse_dims(argv[4]);
        cfg.in_channels = 2;
        cfg.base_filters = std::stoll(argv[5]);
        cfg.depth = std::stoi(argv[6]);
        cfg.norm = unet::parse_norm(argv[7]);
        cfg.seed = 7;
        unet::UNet net(cfg);
        unet::ParamStore& store = net.store();
        // Non-trivial biases and running statistics, so that a mix-up shows.
        std::mt19937 gen(11);
        std::normal_distribution<float> nd(0.f, 0.1f);
        for (const auto& v : store.views())
            if (v.name.find("bias") != std::string::npos)
                for (int64_t i = 0; i < unet::product(v.shape); ++i) store.params()[v.offset + i] = nd(gen);
        for (const auto& v : store.buffer_views())
            for (int64_t i = 0; i < unet::product(v.shape); ++i)
                store.buffers()[v.offset + i] = v.name.find("var") != std::string::npos ? 1.f + std::abs(nd(gen)) : nd(gen);
        for (const auto& v : store.views())
            unet::write_npy(dir + "/param." + v.name + ".npy", v.shape, store.params() + v.offset);
        for (const auto& v : store.buffer_views())
            unet::write_npy(dir + "/buffer." + v.name + ".npy", v.shape, store.buffers() + v.offset);
        std::ofstream(dir + "/config.txt") << "dims " << cfg.dims << "\nin_channels " << cfg.in_channels
                                           << "\nbase_filters " << cfg.base_filters << "\ndepth " << cfg.depth
                                           << "\nnorm " << argv[7] << "\n";

        const int64_t V = unet::product(size);
        std::vector<float> input(size_t(cfg.in_channels * V));
        std::normal_distribution<float> xd(0.f, 1.f);
        for (float& x : input) x = xd(gen);
        unet::write_npy(dir + "/input.npy", with_batch(1, cfg.in_channels, size), input.data());

        struct Case {
            std::string name;
            double overlap;
            unet::Blend blend;
            int64_t batch;
            bool mirror;
        };
        const std::vector<Case> cases = {{"gaussian50", 0.5, unet::Blend::gaussian, 1, false},
                                         {"constant50", 0.5, unet::Blend::constant, 3, false},
                                         {"gaussian25", 0.25, unet::Blend::gaussian, 2, false},
                                         {"constant0", 0.0, unet::Blend::constant, 1, false},
                                         {"mirror", 0.5, unet::Blend::gaussian, 2, true}};
        std::ofstream list(dir + "/cases.txt");
        for (const Case& c : cases) {
            unet::WindowOptions o;
            o.roi = roi, o.overlap = c.overlap, o.blend = c.blend, o.batch = c.batch, o.mirror = c.mirror;
            const std::vector<float> y = unet::sliding_window_predict(net, input.data(), size, o);
            unet::write_npy(dir + "/out." + c.name + ".npy", with_batch(1, 1, size), y.data());
            list << c.name << " " << argv[4] << " " << c.overlap << " " << unet::blend_name(c.blend) << " " << c.batch
                 << " " << (c.mirror ? 1 : 0) << " " << unet::window_count(size, o) << "\n";
        }
        // A window as large as the volume is one plain forward.
        bool divisible = true;
        for (int64_t s : size) divisible = divisible && s % (int64_t(1) << cfg.depth) == 0;
        if (divisible) {
            const float* y = net.forward(input.data(), 1, size, false);
            unet::write_npy(dir + "/forward.npy", with_batch(1, 1, size), y);
            unet::WindowOptions whole;
            whole.roi = size;
            const std::vector<float> w = unet::sliding_window_predict(net, input.data(), size, whole);
            unet::write_npy(dir + "/out.whole.npy", with_batch(1, 1, size), w.data());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sliding_window_dump: %s\n", e.what());
        return 1;
    }
    return 0;
}
