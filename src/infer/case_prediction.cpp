#include "unet/infer/case_prediction.h"

#include <algorithm>
#include <sstream>

#include "unet/core/check.h"
#include "unet/data/preprocess.h"

namespace unet {

std::string InputPreprocessing::describe() const {
    std::ostringstream os;
    os << (dims == 3 ? "3D volumes on " : "2D axial slices resized to ") << dims_text(grid, "x")
       << (crop_distmis ? ", cases of 155 slices cropped to [2, 154)" : "")
       << (standardize ? ", channels standardised over the brain" : ", intensities as given");
    return os.str();
}

std::string InputPreprocessing::to_text() const {
    return "dims = " + std::to_string(dims) + "\ngrid = " + dims_text(grid) + "\ncrop_distmis = " +
           std::to_string(int(crop_distmis)) + "\nstandardize = " + std::to_string(int(standardize)) + "\n";
}

InputPreprocessing InputPreprocessing::from_text(const std::string& text, const std::string& source) {
    InputPreprocessing p;
    std::istringstream in(text);
    std::string line;
    int seen = 0;
    while (std::getline(in, line)) {
        const size_t eq = line.find(" = ");
        if (eq == std::string::npos) continue;
        const std::string key = line.substr(0, eq), value = line.substr(eq + 3);
        try {
            if (key == "dims") p.dims = std::stoi(value), seen |= 1;
            else if (key == "grid") seen |= parse_dims(value, &p.grid) ? 2 : 0;
            else if (key == "crop_distmis") p.crop_distmis = std::stoi(value) != 0, seen |= 4;
            else if (key == "standardize") p.standardize = std::stoi(value) != 0, seen |= 8;
        } catch (const std::exception&) {
            seen = -1;
            break;
        }
    }
    if (seen != 15 || (p.dims != 2 && p.dims != 3) || int(p.grid.size()) != p.dims)
        throw std::runtime_error(source + ": unreadable preprocessing record '" + text + "'");
    return p;
}

InputPreprocessing preprocessing_of(const DatasetAttributes& a, const std::vector<int64_t>& spatial) {
    InputPreprocessing p;
    p.dims = a.mode == "2d" ? 2 : 3;
    p.grid = Dims(spatial.begin(), spatial.end());
    p.crop_distmis = a.crop.find("155 -> 152") != std::string::npos;
    // Intel's npy files are standardised by Intel's own script; NIfTI cases given to such a model
    // get the same per-channel z-score over the brain, the closest we can do.
    p.standardize = true;
    return p;
}

namespace {

// D x H x W of volume v as Dims (2D slices: H x W).
Dims spatial_of(const Volume& v, int dims) {
    return dims == 3 ? Dims{v.depth, v.height, v.width} : Dims{v.height, v.width};
}

Volume as_volume(std::vector<float> data, int64_t c, int64_t d, int64_t h, int64_t w) {
    Volume v;
    v.channels = c, v.depth = d, v.height = h, v.width = w;
    v.data = std::move(data);
    return v;
}

// The slices [2, 154) back into 155 in every channel, the others background.
Volume uncrop(Volume p, int64_t source_depth) {
    if (p.depth == source_depth) return p;
    Volume out;
    out.resize(p.channels, source_depth, p.height, p.width);
    const int64_t plane = p.height * p.width;
    for (int64_t c = 0; c < p.channels; ++c)
        std::copy(p.channel(c), p.channel(c) + p.voxels(), out.channel(c) + 2 * plane);
    return out;
}

}  // namespace

Volume predict_prepared_case(UNet& model, const Volume& image, int dims, const WindowOptions& o,
                             const WindowProgress& progress) {
    const int64_t K = model.config().out_channels;
    if (dims == 3) {
        std::vector<float> y = sliding_window_predict(model, image.data.data(), spatial_of(image, 3), o, progress);
        return as_volume(std::move(y), K, image.depth, image.height, image.width);
    }
    // 2D: every axial slice is one image; the slices share the window batches.
    const int64_t plane = image.height * image.width;
    std::vector<Volume> slices(size_t(image.depth));
    std::vector<const float*> inputs;
    for (int64_t z = 0; z < image.depth; ++z) {
        slices[size_t(z)] = axial_slice(image, z);
        inputs.push_back(slices[size_t(z)].data.data());
    }
    const std::vector<std::vector<float>> ys =
        sliding_window_predict(model, inputs, spatial_of(image, 2), o, progress);
    // Slice z's output is K x H x W: channel k goes to plane z of channel k.
    Volume out;
    out.resize(K, image.depth, image.height, image.width);
    for (int64_t z = 0; z < image.depth; ++z)
        for (int64_t k = 0; k < K; ++k) {
            const float* y = ys[size_t(z)].data() + k * plane;
            std::copy(y, y + plane, out.channel(k) + z * plane);
        }
    return out;
}

Volume predict_prepared_case(UNet& model, Volume&& image, int dims, const WindowOptions& o,
                             const WindowProgress& progress) {
    if (dims != 3) return predict_prepared_case(model, image, dims, o, progress);
    const int64_t D = image.depth, H = image.height, W = image.width;
    std::vector<float> y = sliding_window_predict(model, std::move(image.data), spatial_of(image, 3), o, progress);
    image = Volume();
    return as_volume(std::move(y), model.config().out_channels, D, H, W);
}

Volume predict_source_case(UNet& model, Volume x, const InputPreprocessing& p, const WindowOptions& o,
                           const WindowProgress& progress) {
    const int64_t source_depth = x.depth;
    if (p.crop_distmis) crop_depth_distmis(x);
    if (p.standardize) standardize_brain(x);
    const int64_t D = x.depth, H = x.height, W = x.width;
    if (p.dims == 3) {
        const bool resize = Dims{D, H, W} != p.grid;
        if (resize) x = resize_linear(x, p.grid[0], p.grid[1], p.grid[2]);
        Volume y = predict_prepared_case(model, std::move(x), 3, o, progress);  // its memory back early
        if (resize) y = resize_linear(y, D, H, W);
        return uncrop(std::move(y), source_depth);
    }
    // 2D: slices resized to the model's slice size and back.
    const bool resize = Dims{H, W} != p.grid;
    if (resize) x = resize_linear(x, D, p.grid[0], p.grid[1]);
    Volume y = predict_prepared_case(model, x, 2, o, progress);
    x = Volume();
    if (resize) y = resize_linear(y, D, H, W);
    return uncrop(std::move(y), source_depth);
}

}  // namespace unet
