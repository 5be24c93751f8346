#include "unet/data/prepare.h"

#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "unet/core/check.h"
#include "unet/core/dims.h"
#include "unet/data/hdf5_dataset.h"
#include "unet/data/msd_index.h"
#include "unet/data/nifti.h"
#include "unet/data/npy.h"
#include "unet/data/preprocess.h"
#include "unet/log/progress.h"

namespace unet {

namespace {

const char* kSplitNames[3] = {"train", "val", "test"};

struct Case {
    Volume image, mask;
};

// Reads and transforms one MSD case (steps 1-4 of preprocess.h); errors name the file.
Case load_case(const MsdCase& c, int channels, const PrepareOptions& o) {
    Case out;
    out.image = read_nifti(c.image);
    Volume label = read_nifti(c.label);
    if (out.image.channels != channels)
        throw std::runtime_error(c.image + ": expected " + std::to_string(channels) + " channels, found " +
                                 std::to_string(out.image.channels));
    if (label.channels != 1 || label.depth != out.image.depth || label.height != out.image.height ||
        label.width != out.image.width)
        throw std::runtime_error(c.label + ": label shape " + label.shape_string() + " differs from image shape " +
                                 out.image.shape_string());
    try {
        check_labels(label);
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(c.label + ": " + e.what());
    }
    crop_depth_distmis(out.image);
    crop_depth_distmis(label);
    standardize_brain(out.image);
    if (!o.reshape.empty()) {
        // --reshape is D,H,W, the order of every size the programs take.
        out.image = resize_linear(out.image, o.reshape[0], o.reshape[1], o.reshape[2]);
        label = resize_labels(label, o.reshape[0], o.reshape[1], o.reshape[2]);
    }
    out.mask = std::move(label);
    return out;
}

// 2D: the axial slices of a case that are kept (brain or tumour present, unless keeping all).
std::vector<int64_t> kept_slices(const Case& c, bool keep_empty) {
    std::vector<int64_t> z;
    const int64_t plane = c.image.height * c.image.width;
    for (int64_t k = 0; k < c.image.depth; ++k) {
        bool any = keep_empty;
        for (int64_t ch = 0; ch < c.image.channels && !any; ++ch)
            for (int64_t i = 0; i < plane && !any; ++i) any = c.image.channel(ch)[k * plane + i] != 0.f;
        for (int64_t i = 0; i < plane && !any; ++i) any = c.mask.data[size_t(k * plane + i)] != 0.f;
        if (any) z.push_back(k);
    }
    return z;
}

std::vector<uint8_t> to_bytes(const Volume& mask) {
    std::vector<uint8_t> b(mask.data.size());
    for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(mask.data[i]);  // labels 0-3, checked on reading
    return b;
}

double tumour_share(const Volume& mask) {
    double s = 0;
    for (float v : mask.data) s += v > 0.5f;
    return s;
}

// Completes the file (renaming it into place) and the summary's totals.
void finish_output(DatasetWriter& writer, double tumour, double voxels, std::chrono::steady_clock::time_point t0,
                   PrepareSummary& sum) {
    writer.finish();
    sum.tumour_fraction = voxels > 0 ? tumour / voxels : 0;
    sum.output_bytes = writer.bytes_written();
    sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string PrepareSummary::describe(const std::string& output) const {
    std::ostringstream os;
    os.precision(3);
    os << "wrote " << output << ": " << cases << " cases -> " << samples[0] << " train, " << samples[1] << " val, "
       << samples[2] << " test samples of " << shape_text(spatial) << "; tumour voxels " << 100.0 * tumour_fraction << "%; "
       << double(output_bytes) / (1024.0 * 1024.0) << " MiB in " << seconds << " s";
    return os.str();
}

PrepareSummary prepare_msd(const PrepareOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const MsdIndex index = read_msd_index(o.source_dir);
    if (index.cases.empty()) throw std::runtime_error(o.source_dir + "/dataset.json: no training cases listed");
    const int channels = index.modalities > 0 ? index.modalities : 4;
    const std::vector<int> split = split_cases(int64_t(index.cases.size()), o.split, o.seed);
    const bool two_d = o.mode == "2d";
    PrepareSummary sum;
    sum.cases = int64_t(index.cases.size());

    // Sample counts per split must be known before writing: one per case in 3D; in 2D a first
    // pass counts the kept slices (it reads every case twice).
    std::vector<int64_t> per_case(index.cases.size(), 1);
    std::vector<int64_t> spatial;
    {
        const Case first = load_case(index.cases[0], channels, o);
        spatial = two_d ? std::vector<int64_t>{o.slice_size, o.slice_size}
                        : std::vector<int64_t>{first.image.depth, first.image.height, first.image.width};
    }
    if (two_d) {
        ProgressBar bar("cases counted", sum.cases);
        for (size_t i = 0; i < index.cases.size(); ++i) {
            per_case[i] = int64_t(kept_slices(load_case(index.cases[i], channels, o), o.keep_empty_slices).size());
            bar.update(int64_t(i + 1));
        }
        bar.finish();
    }
    for (size_t i = 0; i < index.cases.size(); ++i) sum.samples[split[i]] += per_case[i];

    DatasetAttributes attrs;
    attrs.mode = o.mode;
    attrs.channels = channels;
    attrs.crop = "depth 155 -> 152: slices [2, 154) (DistMIS)";
    attrs.split_seed = int64_t(o.seed);
    attrs.source = "MSD " + index.name + " from " + o.source_dir;
    attrs.labels = index.labels_json;
    attrs.mask_labels = kMaskLabelsMsd;
    sum.spatial = spatial;
    DatasetWriter writer(o.output, attrs, spatial);
    for (int s = 0; s < 3; ++s) writer.add_split(kSplitNames[s], sum.samples[s]);

    int64_t next[3] = {0, 0, 0};
    double tumour = 0, voxels = 0;
    ProgressBar bar("cases converted", sum.cases);
    for (size_t i = 0; i < index.cases.size(); ++i) {
        const MsdCase& mc = index.cases[i];
        Case c = load_case(mc, channels, o);
        const int s = split[i];
        if (!two_d) {
            if (c.image.depth != spatial[0] || c.image.height != spatial[1] || c.image.width != spatial[2])
                throw std::runtime_error(mc.image + ": shape " + c.image.shape_string() +
                                         " differs from the first case; use --reshape");
            writer.write_sample(kSplitNames[s], next[s]++, c.image.data.data(), to_bytes(c.mask).data(), mc.id);
            tumour += tumour_share(c.mask);
            voxels += double(c.mask.data.size());
        } else {
            for (int64_t z : kept_slices(c, o.keep_empty_slices)) {
                Volume img = axial_slice(c.image, z), msk = axial_slice(c.mask, z);
                if (img.height != o.slice_size || img.width != o.slice_size) {
                    img = resize_linear(img, 1, o.slice_size, o.slice_size);
                    msk = resize_labels(msk, 1, o.slice_size, o.slice_size);
                }
                writer.write_sample(kSplitNames[s], next[s]++, img.data.data(), to_bytes(msk).data(),
                                    mc.id + ":" + std::to_string(z));
                tumour += tumour_share(msk);
                voxels += double(msk.data.size());
            }
        }
        bar.update(int64_t(i + 1));
    }
    bar.finish();
    finish_output(writer, tumour, voxels, t0, sum);
    return sum;
}

PrepareSummary prepare_npy(const std::string& dir, const PrepareOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const NpyArray train_x = read_npy(dir + "/imgs_train.npy"), train_y = read_npy(dir + "/msks_train.npy");
    const NpyArray test_x = read_npy(dir + "/imgs_test.npy"), test_y = read_npy(dir + "/msks_test.npy");
    auto check = [&](const NpyArray& x, const NpyArray& y, const std::string& name) {
        if (x.shape.size() != 4) throw std::runtime_error(dir + "/imgs_" + name + ".npy: expected N x H x W x C");
        if (y.shape.size() != 4 || y.shape[0] != x.shape[0] || y.shape[1] != x.shape[1] || y.shape[2] != x.shape[2] ||
            y.shape[3] != 1)
            throw std::runtime_error(dir + "/msks_" + name + ".npy: expected N x H x W x 1 matching imgs_" + name + ".npy");
    };
    check(train_x, train_y, "train");
    check(test_x, test_y, "test");
    if (test_x.shape[3] != train_x.shape[3]) throw std::runtime_error(dir + "/imgs_test.npy: channel count differs from imgs_train.npy");
    const int64_t C = train_x.shape[3];
    // Intel's files have train and test; the test slices are split in half into val and test.
    const int64_t n_val = test_x.shape[0] / 2;
    PrepareSummary sum;
    sum.samples[0] = train_x.shape[0];
    sum.samples[1] = n_val;
    sum.samples[2] = test_x.shape[0] - n_val;
    DatasetAttributes attrs;
    attrs.mode = "2d";
    attrs.channels = int(C);
    attrs.normalization = "as in the npy files (Intel: z-score per channel)";
    attrs.crop = "none";
    attrs.split_seed = int64_t(o.seed);
    attrs.source = "Intel BraTS npy files from " + dir;
    attrs.labels = R"({"0": "background", "1": "tumour"})";
    attrs.mask_labels = kMaskLabelsBinary;  // Intel joined the labels: the whole tumour only
    sum.spatial = {o.slice_size, o.slice_size};
    DatasetWriter writer(o.output, attrs, sum.spatial);
    for (int s = 0; s < 3; ++s) writer.add_split(kSplitNames[s], sum.samples[s]);
    double tumour = 0, voxels = 0;
    ProgressBar bar("slices converted", train_x.shape[0] + test_x.shape[0]);
    int64_t done = 0;
    auto convert = [&](const NpyArray& x, const NpyArray& y, int64_t i, const std::string& split, int64_t index,
                       const std::string& id) {
        const int64_t H = x.shape[1], W = x.shape[2];
        Volume img, msk;
        img.resize(C, 1, H, W);
        msk.resize(1, 1, H, W);
        for (int64_t p = 0; p < H * W; ++p) {
            for (int64_t c = 0; c < C; ++c) img.channel(c)[p] = x.data[size_t((i * H * W + p) * C + c)];
            msk.data[size_t(p)] = y.data[size_t(i * H * W + p)] > 0.5f ? 1.f : 0.f;
        }
        if (H != o.slice_size || W != o.slice_size) {
            img = resize_linear(img, 1, o.slice_size, o.slice_size);
            msk = resize_labels(msk, 1, o.slice_size, o.slice_size);
        }
        writer.write_sample(split, index, img.data.data(), to_bytes(msk).data(), id);
        tumour += tumour_share(msk);
        voxels += double(msk.data.size());
        bar.update(++done);
    };
    for (int64_t i = 0; i < train_x.shape[0]; ++i) convert(train_x, train_y, i, "train", i, "imgs_train:" + std::to_string(i));
    for (int64_t i = 0; i < test_x.shape[0]; ++i)
        convert(test_x, test_y, i, i < n_val ? "val" : "test", i < n_val ? i : i - n_val, "imgs_test:" + std::to_string(i));
    bar.finish();
    finish_output(writer, tumour, voxels, t0, sum);
    return sum;
}

}  // namespace unet
