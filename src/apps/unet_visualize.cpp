// unet_visualize: one sample of a prepared dataset as images: its channels side by side and the
// ground truth overlaid in red on the first channel; an animated GIF through the axial slices, or
// one slice as PNG. Writes the file; needs no display.
#include <boost/program_options.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <vector>

#include "unet/cli/program.h"
#include "unet/core/check.h"
#include "unet/core/text.h"
#include "unet/data/hdf5_dataset.h"
#include "unet/data/nifti.h"
#include "unet/infer/case_prediction.h"
#include "unet/log/image_writers.h"
#include "unet/train/trained_model.h"

namespace po = boost::program_options;

namespace {

// Grey levels: each channel windowed to its [1%, 99%] range over non-zero voxels.
struct Window {
    float lo = 0, hi = 1;
};
Window window_of(const float* x, int64_t n) {
    std::vector<float> v;
    for (int64_t i = 0; i < n; ++i)
        if (x[i] != 0.f) v.push_back(x[i]);
    if (v.size() < 2) return {};
    std::sort(v.begin(), v.end());
    Window w{v[v.size() / 100], v[v.size() - 1 - v.size() / 100]};
    if (w.hi <= w.lo) w.hi = w.lo + 1;
    return w;
}

// Panels: each channel in grey, then the first channel with the truth in red, then (with a
// prediction) the first channel with the prediction in green.
unet::RgbImage render_slice(const std::vector<float>& img, const std::vector<float>& mask, const std::vector<float>& pred,
                            int channels, int64_t z, int64_t H, int64_t W, const std::vector<Window>& win) {
    const int64_t plane = H * W, V = plane * int64_t(img.size() / size_t(channels) / size_t(plane));
    const int panels = channels + 1 + (pred.empty() ? 0 : 1);
    unet::RgbImage out;
    out.resize(int(W * panels), int(H));
    for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
            const int64_t i = z * plane + y * W + x;
            for (int c = 0; c < panels; ++c) {
                const int src = c < channels ? c : 0;
                const float v = img[size_t(src * V + i)];
                const float t = std::clamp((v - win[size_t(src)].lo) / (win[size_t(src)].hi - win[size_t(src)].lo), 0.f, 1.f);
                uint8_t g = v == 0.f ? 0 : uint8_t(t * 255.f);
                uint8_t* p = out.at(int(c * W + x), int(y));
                p[0] = p[1] = p[2] = g;
                if (c == channels && mask[size_t(i)] > 0.5f) p[0] = uint8_t(std::min(255, 128 + g / 2)), p[1] = p[2] = uint8_t(g / 4);
                if (c == channels + 1 && pred[size_t(i)] >= 0.5f) p[1] = uint8_t(std::min(255, 128 + g / 2)), p[0] = p[2] = uint8_t(g / 4);
            }
        }
    return out;
}

// The model of a checkpoint on one prepared sample (its probability; for a region model the voxels
// of any region), in eval mode, by sliding windows of its
// training patch (unet_predict's code), so memory is bounded by the window, not the volume.
std::vector<float> predict(const std::string& checkpoint, const std::vector<float>& img, int channels,
                           const std::vector<int64_t>& spatial) {
    unet::TrainedModel t = unet::load_trained_model(checkpoint);
    t.model->drop_gradients();  // forwards only
    const unet::UNetConfig& m = t.options.model;
    if (m.in_channels != channels || m.dims != int(spatial.size()))
        throw unet::UsageError("--checkpoint: " + checkpoint + " is a " + std::to_string(m.dims) + "D model for " +
                               std::to_string(m.in_channels) + " channels; this dataset has " +
                               std::to_string(spatial.size()) + "D samples with " + std::to_string(channels));
    unet::WindowOptions w;
    w.roi = t.training_window();
    w.validate(m);
    unet::Volume v;
    v.channels = channels, v.depth = spatial.size() == 3 ? spatial[0] : 1;
    v.height = spatial[spatial.size() - 2], v.width = spatial[spatial.size() - 1];
    v.data = img;
    const unet::Volume prob = unet::predict_prepared_case(*t.model, v, m.dims, w);
    if (t.options.regions.size() == 1) return prob.data;
    // A region model: the tumour its label map marks (any region), shown as the whole tumour.
    std::vector<uint8_t> labels(size_t(v.voxels()));
    unet::label_map_from_regions(prob.data.data(), v.voxels(), t.options.regions, labels.data());
    std::vector<float> tumour(labels.size());
    for (size_t i = 0; i < labels.size(); ++i) tumour[i] = labels[i] ? 1.f : 0.f;
    return tumour;
}

// A NIfTI mask (a unet_predict output or an MSD label) as 0/1 on the image's grid.
std::vector<float> nifti_mask(const std::string& flag, const std::string& path, const unet::Volume& like) {
    unet::Volume m;
    try {
        m = unet::read_nifti(path);
    } catch (const std::runtime_error& e) {
        throw unet::UsageError(flag + ": " + e.what());
    }
    if (m.channels != 1 || m.depth != like.depth || m.height != like.height || m.width != like.width)
        throw unet::UsageError(flag + ": " + path + " is " + m.shape_string() + ", not on the image's grid " +
                               like.shape_string());
    for (float& v : m.data) v = v != 0.f ? 1.f : 0.f;
    return m.data;
}

int run(int argc, char** argv) {
    std::string dataset, split = "train", out, checkpoint, image, label, prediction;
    int64_t sample = 0, slice = -1;
    po::options_description flags(
        "unet_visualize: a dataset sample as an animated GIF through its axial slices, or one slice as PNG\n\n"
        "  unet_visualize --dataset data/brats.h5 --sample 3 --out sample.gif\n"
        "  unet_visualize --dataset data/brats.h5 --sample 3 --slice 70 --out slice.png\n"
        "  unet_visualize --image BRATS_001.nii.gz --prediction pred/BRATS_001.nii.gz --slice 77 --out pred.png\n\nFlags");
    flags.add_options()
        ("dataset", po::value(&dataset), "prepared HDF5 dataset")
        ("sample", po::value(&sample)->default_value(0), "sample index in the split")
        ("split", po::value(&split)->default_value("train"), "train | val | test")
        ("slice", po::value(&slice)->default_value(-1), "write this axial slice as PNG instead of a GIF")
        ("checkpoint", po::value(&checkpoint), "a unet_train checkpoint: adds a panel with its prediction (green)")
        ("image", po::value(&image), "instead of --dataset: a NIfTI scan (C channels, x fastest)")
        ("label", po::value(&label), "with --image: its ground truth (NIfTI; any non-zero label is tumour)")
        ("prediction", po::value(&prediction), "a NIfTI mask on the sample's grid, e.g. a unet_predict output (green)")
        ("out", po::value(&out), "output file (.gif, or .png with --slice)")
        ("help,h", "show this help");
    po::variables_map vm;
    if (!unet::parse_command_line(argc, argv, flags, vm)) return 0;
    if (dataset.empty() == image.empty()) throw unet::UsageError("--dataset, --image: give one of them");
    if (out.empty()) throw unet::UsageError("--out: required");
    // The file name's extension says the format; it must agree with --slice (one PNG) or not (a GIF).
    const bool png = unet::ends_with(out, ".png"), gif = unet::ends_with(out, ".gif");
    if (!png && !gif)
        throw unet::UsageError("--out: expected a file name ending in .gif (every slice) or .png (one --slice), got '" +
                               out + "'");
    if (png && slice < 0) throw unet::UsageError("--out: a .png holds one slice: give --slice N (or name a .gif)");
    if (gif && slice >= 0) throw unet::UsageError("--out: --slice writes one PNG: name the file .png");
    if (!prediction.empty() && !checkpoint.empty()) throw unet::UsageError("--prediction, --checkpoint: give one of them");
    int64_t D, H, W;
    int C;
    std::vector<float> img, mask, pred;
    std::string what;
    if (!image.empty()) {
        unet::Volume v;
        try {
            v = unet::read_nifti(image);
        } catch (const std::runtime_error& e) {
            throw unet::UsageError(std::string("--image: ") + e.what());
        }
        C = int(v.channels), D = v.depth, H = v.height, W = v.width;
        mask = label.empty() ? std::vector<float>(size_t(D * H * W), 0.f) : nifti_mask("--label", label, v);
        if (!prediction.empty()) pred = nifti_mask("--prediction", prediction, v);
        if (!checkpoint.empty()) throw unet::UsageError("--checkpoint: with --image, segment it with unet_predict and pass --prediction");
        img = std::move(v.data);
        what = image;
    } else {
        unet::DatasetReader reader(dataset);
        if (!reader.has_split(split)) throw unet::UsageError("--split: " + dataset + " has no '" + split + "' split");
        if (sample < 0 || sample >= reader.count(split))
            throw unet::UsageError("--sample: expected 0.." + std::to_string(reader.count(split) - 1) + " for split " + split);
        const auto sp = reader.spatial();
        D = sp.size() == 3 ? sp[0] : 1, H = sp[sp.size() - 2], W = sp[sp.size() - 1];
        C = reader.channels();
        img.resize(size_t(C * D * H * W)), mask.resize(size_t(D * H * W));
        reader.read_sample(split, sample, img.data(), mask.data());
        if (!checkpoint.empty()) pred = predict(checkpoint, img, C, sp);
        unet::Volume grid;
        grid.channels = 1, grid.depth = D, grid.height = H, grid.width = W;
        if (!prediction.empty()) pred = nifti_mask("--prediction", prediction, grid);
        what = split + " sample " + std::to_string(sample) + ": " + reader.case_id(split, sample);
    }
    std::vector<Window> win;
    for (int c = 0; c < C; ++c) win.push_back(window_of(img.data() + c * D * H * W, D * H * W));
    if (slice >= 0) {
        if (slice >= D) throw unet::UsageError("--slice: expected 0.." + std::to_string(D - 1));
        unet::write_png(out, render_slice(img, mask, pred, C, slice, H, W, win));
    } else {
        std::vector<unet::RgbImage> frames;
        for (int64_t z = 0; z < D; ++z) frames.push_back(render_slice(img, mask, pred, C, z, H, W, win));
        unet::write_gif(out, frames);
    }
    std::printf("wrote %s (%s)\n", out.c_str(), what.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return unet::run_program("unet_visualize", [&] { return run(argc, argv); });
}
