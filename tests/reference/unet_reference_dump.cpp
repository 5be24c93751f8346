// Dumps one training step of unet::UNet as .npy files, for tests/reference/check_against_torch.py.
//
//   unet_reference_dump --out DIR [--dims 2] [--size 32,32] [--in_channels 2] [--out_channels 1]
//       [--base_filters 4] [--depth 2] [--upsampling transposed] [--norm none] [--norm_groups 8]
//       [--loss dice] [--batch 2] [--seed 1] [--lr 1e-3] [--amsgrad 0] [--beta1 0.9]
//       [--beta2 0.999] [--perturb 1] [--labels wt,tc,et]
//
// Not built by the Makefile; tests/reference/torch_crosscheck.sh compiles it against
// build/libunet.a. Writes into DIR (created if needed):
//   config.json                 the model / loss / optimizer configuration
//   order.txt                   parameter names in the store's flat order, then "buffer <name>"
//   input.npy truth.npy         N x C x [D x] H x W float32 (truth binary; C = out_channels)
//   labels.npy                  with --labels only: N x [D x] H x W float32 label map (0..3)
//                               the truth was derived from by unet::region_masks
//   param.<name>.npy            initial parameters (shape = ParamView::shape)
//   buffer.<name>.npy           initial buffers (batch-norm running statistics)
//   output.npy                  training-mode forward output (probabilities)
//   loss.npy                    batch loss (loss.h: Dice over the whole batch, per output
//                               channel, mean over the channels), float64 scalar
//   channel_loss.npy            each output channel's own batch loss (float64, out_channels),
//                               from loss_partial_sums / loss_from_sums of that channel alone
//   grad.<name>.npy             gradients of the batch loss after backward()
//   buffer_after.<name>.npy     buffers after the training forward
//   step1.<name>.npy            parameters after one Adam step on grad.*
//   step2.<name>.npy            parameters after a second Adam step on the synthetic gradient
//                               g2 = g * (local index odd ? 0.01f : -0.5f) (this shrinks v for
//                               half of the elements, so amsgrad's running max matters; with
//                               beta2 = 0.999 that is a 5e-4 effect, so amsgrad cases should
//                               also pass e.g. --beta2 0.9)
//   eval_output.npy             eval-mode forward with the step-2 parameters and buffer_after.*
// With --perturb 1 (default) the He initialisation is followed by random norm gammas / betas,
// conv biases and running statistics, so that a missing scale or shift cannot hide behind 1 / 0.
// Truth: without --labels, a random half-space per sample and channel with 10% salt-and-pepper
// noise. With --labels (a region list as unet_train reads it: wt,tc,et | regions | e.g. et,wt;
// as many regions as --out_channels), a random label map per sample (a nested ball: ET inside
// TC inside WT, 10% of the voxels set to a random label 0..3) turned into one mask channel per
// region by unet::region_masks (BraTS region training, label_regions.h).
#include <sys/stat.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "unet/core/check.h"
#include "unet/core/param_store.h"
#include "unet/core/rng.h"
#include "unet/data/label_regions.h"
#include "unet/nn/loss.h"
#include "unet/nn/norm.h"
#include "unet/nn/optimizer.h"
#include "unet/nn/unet.h"

namespace po = boost::program_options;

namespace {

// Minimal .npy v1.0 writer: little-endian '<f4' or '<f8', C order.
template <class T>
void write_npy(const std::string& path, const T* data, const std::vector<int64_t>& shape) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "f4 or f8 only");
    std::ostringstream h;
    h << "{'descr': '" << (sizeof(T) == 4 ? "<f4" : "<f8") << "', 'fortran_order': False, 'shape': (";
    for (size_t i = 0; i < shape.size(); ++i) h << shape[i] << (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    h << "), }";
    std::string header = h.str();
    // magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of
    // 64 and terminated by '\n'.
    const size_t unpadded = 10 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header.push_back('\n');
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    std::ofstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot write " + path);
    const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
    f.write(magic, 8);
    const uint16_t hlen = uint16_t(header.size());
    const unsigned char hl[2] = {static_cast<unsigned char>(hlen & 0xff),
                                 static_cast<unsigned char>(hlen >> 8)};
    f.write(reinterpret_cast<const char*>(hl), 2);
    f.write(header.data(), std::streamsize(header.size()));
    // x86 is little-endian, so the raw bytes are already '<f4' / '<f8'.
    f.write(reinterpret_cast<const char*>(data), std::streamsize(size_t(count) * sizeof(T)));
    if (!f) throw std::runtime_error("write failed: " + path);
}

std::vector<int64_t> parse_size(const std::string& s, int dims) {
    std::vector<int64_t> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) out.push_back(std::stoll(item));
    if (out.size() == 1) out.assign(size_t(dims), out[0]);
    if (int(out.size()) != dims) throw unet::UsageError("--size needs 1 or " + std::to_string(dims) + " values");
    return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void dump_params(const unet::ParamStore& store, const float* flat, const std::string& dir,
                 const std::string& prefix) {
    for (const auto& v : store.views())
        write_npy(dir + "/" + prefix + v.name + ".npy", flat + v.offset, v.shape);
}

void dump_buffers(const unet::ParamStore& store, const std::string& dir, const std::string& prefix) {
    for (const auto& v : store.buffer_views())
        write_npy(dir + "/" + prefix + v.name + ".npy", store.buffers() + v.offset, v.shape);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        std::string out_dir, size_s, upsampling, norm, loss, labels_s;
        unet::UNetConfig cfg;
        int64_t batch = 2;
        uint64_t seed = 1;
        float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f;
        bool amsgrad = false, perturb = true;

        po::options_description desc("unet_reference_dump");
        desc.add_options()
            ("help", "usage")
            ("out", po::value(&out_dir)->required(), "output directory")
            ("dims", po::value(&cfg.dims)->default_value(2), "2 or 3")
            ("size", po::value(&size_s)->default_value("32"), "spatial size, e.g. 32,32 or 16")
            ("in_channels", po::value(&cfg.in_channels)->default_value(2), "")
            ("out_channels", po::value(&cfg.out_channels)->default_value(1), "")
            ("base_filters", po::value(&cfg.base_filters)->default_value(4), "")
            ("depth", po::value(&cfg.depth)->default_value(2), "")
            ("upsampling", po::value(&upsampling)->default_value("transposed"), "")
            ("norm", po::value(&norm)->default_value("none"), "")
            ("norm_groups", po::value(&cfg.norm_groups)->default_value(8), "")
            ("loss", po::value(&loss)->default_value("dice"), "")
            ("batch", po::value(&batch)->default_value(2), "")
            ("seed", po::value(&seed)->default_value(1), "")
            ("lr", po::value(&lr)->default_value(1e-3f), "")
            ("amsgrad", po::value(&amsgrad)->default_value(false), "")
            ("beta1", po::value(&beta1)->default_value(0.9f), "")
            ("beta2", po::value(&beta2)->default_value(0.999f), "")
            ("perturb", po::value(&perturb)->default_value(true), "")
            ("labels", po::value(&labels_s)->default_value(""),
             "region truth (wt,tc,et | regions | a sub-list) from a random label map; empty: half-spaces");
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, desc), vm);
        if (vm.count("help")) {
            std::cout << desc << "\n";
            return 0;
        }
        po::notify(vm);

        cfg.upsampling = unet::parse_upsampling(upsampling);
        cfg.norm = unet::parse_norm(norm);
        cfg.dropout = 0.f;
        cfg.seed = seed;
        const unet::LossKind loss_kind = unet::parse_loss(loss);
        const unet::Dims spatial = parse_size(size_s, cfg.dims);
        cfg.validate(spatial);
        const bool region_truth = !labels_s.empty();
        unet::Regions regions;
        if (region_truth) {
            regions = unet::parse_regions(labels_s);
            if (int64_t(regions.size()) != int64_t(cfg.out_channels))
                throw unet::UsageError("--labels " + labels_s + " names " + std::to_string(regions.size()) +
                                       " regions but --out_channels is " + std::to_string(cfg.out_channels));
        }
        if (mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST)
            throw std::runtime_error("cannot create " + out_dir + ": " + std::strerror(errno));

        unet::UNet net(cfg);
        unet::ParamStore& store = net.store();

        unet::Rng rng(seed * 7919 + 17);
        if (perturb) {
            for (const auto& v : store.views()) {
                const bool is_norm = v.name.find(".norm") != std::string::npos;
                float* p = store.params() + v.offset;
                if (is_norm && ends_with(v.name, ".weight"))
                    for (int64_t i = 0; i < v.count; ++i) p[i] = rng.uniform(0.6f, 1.4f);
                else if (ends_with(v.name, ".bias"))
                    for (int64_t i = 0; i < v.count; ++i) p[i] = 0.1f * rng.normal();
            }
            for (const auto& v : store.buffer_views()) {
                float* b = store.buffers() + v.offset;
                if (ends_with(v.name, ".running_mean"))
                    for (int64_t i = 0; i < v.count; ++i) b[i] = 0.1f * rng.normal();
                else if (ends_with(v.name, ".running_var"))
                    for (int64_t i = 0; i < v.count; ++i) b[i] = rng.uniform(0.5f, 1.5f);
            }
        }

        int64_t vox = 1;
        for (auto s : spatial) vox *= s;
        std::vector<int64_t> in_shape{batch, cfg.in_channels}, out_shape{batch, cfg.out_channels};
        in_shape.insert(in_shape.end(), spatial.begin(), spatial.end());
        out_shape.insert(out_shape.end(), spatial.begin(), spatial.end());
        const int64_t in_count = batch * cfg.in_channels * vox;
        const int64_t per_sample = cfg.out_channels * vox;
        const int64_t out_count = batch * per_sample;

        std::vector<float> input(static_cast<size_t>(in_count)), truth(static_cast<size_t>(out_count));
        for (auto& x : input) x = rng.normal();
        // Normalised coordinate of voxel s along spatial axis `axis` (0 = D or H ... last = W).
        auto coord = [&](int64_t s, size_t axis) {
            int64_t stride = 1;
            for (size_t a = axis + 1; a < spatial.size(); ++a) stride *= spatial[a];
            return float((s / stride) % spatial[axis]) / float(spatial[axis]) - 0.5f;
        };
        if (region_truth) {
            // A nested ball per sample: label 3 (ET) inside 2 (TC without ET) inside 1 (oedema),
            // 0 outside, then 10% of the voxels relabelled at random, so every region has a
            // non-trivial Dice and the regions differ from each other.
            std::vector<uint8_t> labels(static_cast<size_t>(batch * vox));
            std::vector<float> labels_f(labels.size());
            for (int64_t n = 0; n < batch; ++n) {
                std::vector<float> centre(spatial.size());
                for (auto& c : centre) c = rng.uniform(-0.2f, 0.2f);
                const float radius = rng.uniform(0.3f, 0.45f);
                for (int64_t s = 0; s < vox; ++s) {
                    float d2 = 0.f;
                    for (size_t a = 0; a < spatial.size(); ++a) {
                        const float u = coord(s, a) - centre[a];
                        d2 += u * u;
                    }
                    const float d = std::sqrt(d2) / radius;
                    int l = d < 0.45f ? 3 : d < 0.75f ? 2 : d < 1.f ? 1 : 0;
                    if (rng.uniform() < 0.1f) l = int(rng.below(4));
                    labels[size_t(n * vox + s)] = uint8_t(l);
                    labels_f[size_t(n * vox + s)] = float(l);
                }
                unet::region_masks(labels.data() + n * vox, vox, regions, truth.data() + n * per_sample);
            }
            std::vector<int64_t> label_shape{batch};
            label_shape.insert(label_shape.end(), spatial.begin(), spatial.end());
            write_npy(out_dir + "/labels.npy", labels_f.data(), label_shape);
        }
        // Otherwise: a random half-space per sample plus 10% salt-and-pepper noise, so the Dice
        // terms are neither trivial nor dominated by noise.
        for (int64_t n = 0; n < batch && !region_truth; ++n) {
            const float a = rng.uniform(-1.f, 1.f), b = rng.uniform(-1.f, 1.f), c = rng.uniform(-0.3f, 0.3f);
            for (int64_t ch = 0; ch < cfg.out_channels; ++ch)
                for (int64_t s = 0; s < vox; ++s) {
                    const float x = float(s % spatial.back()) / float(spatial.back()) - 0.5f;
                    const float y = float((s / spatial.back()) % spatial[spatial.size() - 2]) /
                                        float(spatial[spatial.size() - 2]) - 0.5f;
                    float t = (a * x + b * y + c > 0.f) ? 1.f : 0.f;
                    if (rng.uniform() < 0.1f) t = 1.f - t;
                    truth[size_t((n * cfg.out_channels + ch) * vox + s)] = t;
                }
        }

        write_npy(out_dir + "/input.npy", input.data(), in_shape);
        write_npy(out_dir + "/truth.npy", truth.data(), out_shape);
        dump_params(store, store.params(), out_dir, "param.");
        dump_buffers(store, out_dir, "buffer.");
        {
            std::ofstream order(out_dir + "/order.txt");
            for (const auto& v : store.views()) order << v.name << "\n";
            for (const auto& v : store.buffer_views()) order << "buffer " << v.name << "\n";
        }

        // Training forward, loss, backward.
        const float* out = net.forward(input.data(), batch, spatial, /*training=*/true, /*step=*/0);
        std::vector<float> output(out, out + out_count);
        write_npy(out_dir + "/output.npy", output.data(), out_shape);
        dump_buffers(store, out_dir, "buffer_after.");

        std::vector<float> diff(static_cast<size_t>(out_count));
        const int channels = int(cfg.out_channels);
        const double loss_sum = unet::loss_sum_and_grad(loss_kind, output.data(), truth.data(), batch, channels,
                                                        vox, 1.0 / double(batch), diff.data());
        const double loss_mean = loss_sum / double(batch);
        const double loss_check = unet::loss_sum(loss_kind, output.data(), truth.data(), batch, channels, vox);
        write_npy(out_dir + "/loss.npy", &loss_mean, {});
        {
            const std::vector<unet::LossSums> sums =
                unet::loss_partial_sums(loss_kind, output.data(), truth.data(), batch, channels, vox);
            std::vector<double> per_channel;
            for (const unet::LossSums& s : sums) per_channel.push_back(unet::loss_from_sums(loss_kind, {s}));
            write_npy(out_dir + "/channel_loss.npy", per_channel.data(), {int64_t(per_channel.size())});
        }
        write_npy(out_dir + "/loss_diff.npy", diff.data(), out_shape);
        net.backward(diff.data());
        dump_params(store, store.grads(), out_dir, "grad.");

        // Two Adam steps.
        unet::OptimizerConfig ocfg;
        ocfg.kind = "adam";
        ocfg.amsgrad = amsgrad;
        ocfg.beta1 = beta1;
        ocfg.beta2 = beta2;
        ocfg.validate();
        unet::Optimizer opt(ocfg, store.size());
        opt.step(store.params(), store.grads(), lr);
        dump_params(store, store.params(), out_dir, "step1.");
        std::vector<float> g2(store.grads(), store.grads() + store.size());
        for (const auto& v : store.views())
            for (int64_t i = 0; i < v.count; ++i) g2[size_t(v.offset + i)] *= (i % 2) ? 0.01f : -0.5f;
        opt.step(store.params(), g2.data(), lr);
        dump_params(store, store.params(), out_dir, "step2.");

        // Eval forward with the updated parameters (checks that layers see the new weights).
        const float* ev = net.forward(input.data(), batch, spatial, /*training=*/false, /*step=*/1);
        write_npy(out_dir + "/eval_output.npy", ev, out_shape);

        std::ofstream js(out_dir + "/config.json");
        js.precision(9);
        js << "{\"dims\": " << cfg.dims << ", \"size\": [";
        for (size_t i = 0; i < spatial.size(); ++i) js << (i ? ", " : "") << spatial[i];
        js << "], \"in_channels\": " << cfg.in_channels << ", \"out_channels\": " << cfg.out_channels
           << ", \"base_filters\": " << cfg.base_filters << ", \"depth\": " << cfg.depth
           << ", \"upsampling\": \"" << unet::upsampling_name(cfg.upsampling) << "\", \"norm\": \""
           << unet::norm_name(cfg.norm) << "\", \"norm_groups\": " << cfg.norm_groups
           << ", \"dropout\": 0.0, \"loss\": \"" << unet::loss_name(loss_kind) << "\", \"batch\": " << batch
           << ", \"seed\": " << seed << ", \"lr\": " << double(lr) << ", \"amsgrad\": "
           << (amsgrad ? "true" : "false") << ", \"beta1\": " << double(ocfg.beta1)
           << ", \"beta2\": " << double(ocfg.beta2) << ", \"epsilon\": " << double(ocfg.epsilon)
           << ", \"labels\": \"" << (region_truth ? unet::regions_text(regions) : std::string()) << "\""
           << ", \"loss_sum_matches\": " << (std::fabs(loss_check - loss_sum) <= 1e-6 * std::fabs(loss_sum) + 1e-9 ? "true" : "false")
           << "}\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "unet_reference_dump: " << e.what() << "\n";
        return 1;
    }
}
