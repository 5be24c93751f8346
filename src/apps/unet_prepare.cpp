// unet_prepare: MSD Task01 (NIfTI + dataset.json) or Intel's BraTS npy files -> one HDF5 dataset;
// or a synthetic MSD-layout dataset. One clear line and a non-zero exit on bad input
// (2 for flags, 1 for files).
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "unet/train/train_options.h"
#include "unet/cli/program.h"
#include "unet/core/check.h"
#include "unet/data/prepare.h"
#include "unet/data/preprocess.h"
#include "unet/data/synthetic_msd.h"
#include "unet/log/progress.h"

namespace po = boost::program_options;

static int run(int argc, char** argv) {
    unet::PrepareOptions o;
    std::string split = "0.7,0.15,0.15", reshape, from_npy, output_dir, synthetic_size = "155,240,240";
    int synthetic = 0;
    po::options_description flags(
        "unet_prepare: convert brain-tumour data into the HDF5 dataset unet_train reads\n\n"
        "  unet_prepare --source_dir Task01_BrainTumour --output data/brats.h5 [--mode 3d|2d]\n"
        "  unet_prepare --from_npy DIR --output data/brats2d.h5\n"
        "  unet_prepare --synthetic 8 --output_dir data/synthetic [--synthetic_size 64,96,96]\n\nFlags");
    flags.add_options()
        ("source_dir", po::value(&o.source_dir), "MSD folder with dataset.json, imagesTr/, labelsTr/")
        ("output", po::value(&o.output)->default_value("data/brats.h5"), "HDF5 file to write")
        ("mode", po::value(&o.mode)->default_value("3d"), "3d (volumes) or 2d (axial slices)")
        ("split", po::value(&split)->default_value(split), "train,val,test fractions by case")
        ("reshape", po::value(&reshape), "resize volumes to D,H,W (trilinear), e.g. 152,240,240")
        ("slice_size", po::value(&o.slice_size)->default_value(128), "2d: slices resized to this square size")
        ("keep_empty_slices", po::bool_switch(&o.keep_empty_slices), "2d: also keep slices with no brain and no tumour")
        ("seed", po::value(&o.seed)->default_value(816), "seed of the case split (logged in the file)")
        ("from_npy", po::value(&from_npy), "folder with Intel's imgs_/msks_ train/test .npy files")
        ("synthetic", po::value(&synthetic)->default_value(0), "write N synthetic MSD cases to --output_dir")
        ("output_dir", po::value(&output_dir), "folder for --synthetic")
        ("synthetic_size", po::value(&synthetic_size)->default_value(synthetic_size), "D,H,W of synthetic volumes (depth = axial slices)")
        ("help,h", "show this help");
    po::variables_map vm;
    if (!unet::parse_command_line(argc, argv, flags, vm)) return 0;
    if (synthetic > 0) {
        if (output_dir.empty()) throw unet::UsageError("--synthetic: needs --output_dir");
        const auto size = unet::parse_size_list("synthetic_size", synthetic_size);
        if (size.size() != 3) throw unet::UsageError("--synthetic_size: expected D,H,W");
        unet::SyntheticSpec spec;
        spec.cases = synthetic;
        spec.depth = size[0], spec.height = size[1], spec.width = size[2];
        spec.seed = o.seed;
        unet::ProgressBar bar("synthetic cases", synthetic);
        unet::write_synthetic_msd(output_dir, spec, [&](int done, int) { bar.update(done); });
        bar.finish();
        std::printf("wrote %d synthetic cases (%s) to %s\n", synthetic, unet::shape_text({spec.depth, spec.height, spec.width}).c_str(),
                    output_dir.c_str());
        return 0;
    }
    if (synthetic < 0) throw unet::UsageError("--synthetic: expected a positive number of cases");
    if (o.mode != "3d" && o.mode != "2d") throw unet::UsageError("--mode: expected 3d or 2d, got '" + o.mode + "'");
    o.split = unet::parse_split(split);
    if (!reshape.empty()) {
        const auto r = unet::parse_size_list("reshape", reshape);
        if (r.size() != 3) throw unet::UsageError("--reshape: expected 3 sizes D,H,W, got " + std::to_string(r.size()));
        o.reshape.assign(r.begin(), r.end());
    }
    if (o.slice_size < 8) throw unet::UsageError("--slice_size: expected at least 8");
    unet::PrepareSummary s;
    if (!from_npy.empty()) {
        s = unet::prepare_npy(from_npy, o);
    } else {
        if (o.source_dir.empty()) throw unet::UsageError("--source_dir: required (or --from_npy / --synthetic)");
        s = unet::prepare_msd(o);
    }
    std::printf("%s\n", s.describe(o.output).c_str());
    std::printf("%s\n", from_npy.empty()
                            ? "masks: MSD labels 0-3 (1 oedema, 2 non-enhancing tumour, 3 enhancing tumour): "
                              "--labels wt, regions (wt,tc,et) or a list"
                            : "masks: binary (Intel's .npy files join the labels): the whole tumour only, --labels wt");
    return 0;
}

int main(int argc, char** argv) {
    return unet::run_program("unet_prepare", [&] { return run(argc, argv); });
}
