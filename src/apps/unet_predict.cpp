// unet_predict: a trained model applied to scans. Segments whole volumes (sliding windows in 3D,
// every axial slice in 2D), writes the masks as NIfTI on each scan's own grid and header, and
// scores them against ground truth as BraTS does (Dice, HD95 in mm, sensitivity, specificity,
// volumes, per region of the model) into metrics.csv. Under mpirun the cases are split over the ranks.
// A region model (unet_train --labels regions: one sigmoid per region, label_regions.h) writes the
// label map in MSD numbering (ET 3, TC without ET 2, WT without TC 1); a WT model the 0/1 mask.
#include <boost/program_options.hpp>
#include <malloc.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <dirent.h>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "unet/cli/program.h"
#include "unet/core/check.h"
#include "unet/core/text.h"
#include "unet/data/hdf5_dataset.h"
#include "unet/data/label_regions.h"
#include "unet/data/msd_index.h"
#include "unet/data/nifti.h"
#include "unet/data/preprocess.h"
#include "unet/parallel/comm.h"
#include "unet/parallel/thread_placement.h"
#include "unet/infer/case_prediction.h"
#include "unet/infer/segmentation_metrics.h"
#include "unet/log/progress.h"
#include "unet/log/training_log.h"
#include "unet/train/trained_model.h"
#include "unet/train/trainer.h"

namespace po = boost::program_options;

namespace {

using Clock = std::chrono::steady_clock;

struct PredictOptions {
    std::string checkpoint, output_dir;
    std::vector<std::string> inputs;
    std::string source_dir, list;
    std::string dataset, split = "test";
    std::string roi;
    double overlap = 0.5;
    std::string blend = "gaussian";
    int64_t sw_batch = 1;
    bool mirror = false, probabilities = false;
    double threshold = 0.5;
    std::string empty = "brats";
    std::string labels;  // --labels: checked against the checkpoint's regions ("" = not given)
    int num_threads = 0;
};

// One case to segment: a NIfTI image (with its label, if any), or samples of a prepared split.
struct CaseInput {
    std::string id;
    std::string image, label;           // NIfTI inputs
    int64_t first = 0, count = 0;       // --dataset: samples [first, first + count) of the split
};

bool parse(int argc, char** argv, PredictOptions& o) {
    po::options_description flags(
        "unet_predict: segment scans with a trained checkpoint, write NIfTI masks on each scan's grid, score them\n\n"
        "  unet_predict --checkpoint runs/a/checkpoint_best.h5 --input BRATS_001.nii.gz --output_dir pred\n"
        "  unet_predict --checkpoint C --source_dir data/Task01_BrainTumour --list imagesTr --output_dir pred\n"
        "  unet_predict --checkpoint C --dataset data/brats.h5 --split test --output_dir pred\n"
        "  mpirun -np 4 unet_predict ...   (cases split over the ranks)\n\nFlags");
    flags.add_options()
        ("checkpoint", po::value(&o.checkpoint), "a unet_train checkpoint (model, weights, preprocessing)")
        ("output_dir", po::value(&o.output_dir), "where masks (<case>.nii.gz) and metrics.csv are written")
        ("input", po::value(&o.inputs)->composing(), "an MSD 4D image .nii[.gz] (repeatable); not scored")
        ("source_dir", po::value(&o.source_dir), "an MSD Task01-layout folder: every case of --list")
        ("list", po::value(&o.list), "imagesTr (scored against labelsTr) | imagesTs (default: imagesTs if present)")
        ("dataset", po::value(&o.dataset), "a prepared HDF5 dataset: every case of --split, scored")
        ("split", po::value(&o.split)->default_value("test"), "train | val | test, with --dataset")
        ("roi", po::value(&o.roi), "window D,H,W (3D) or slice H,W (2D) (default: the training patch or input size)")
        ("overlap", po::value(&o.overlap)->default_value(0.5), "share of a window overlapping its neighbour, [0, 1)")
        ("blend", po::value(&o.blend)->default_value("gaussian"), "gaussian (sigma = roi / 8) | constant")
        ("sw_batch", po::value(&o.sw_batch)->default_value(1), "windows (or 2D slices) per forward")
        ("mirror", po::bool_switch(&o.mirror), "test-time mirroring: average over flips of every axis")
        ("probabilities", po::bool_switch(&o.probabilities),
         "also write <case>_prob.nii.gz (float32); a region model one per region, <case>_prob_wt.nii.gz, _tc, _et")
        ("threshold", po::value(&o.threshold)->default_value(0.5),
         "probability at or above which a voxel is tumour (in a region)")
        ("labels", po::value(&o.labels),
         "the regions the checkpoint must have been trained for: wt | regions (wt,tc,et) | a list of wt, tc, et; "
         "refused when they differ (default: the checkpoint's)")
        ("empty", po::value(&o.empty)->default_value("brats"),
         "brats: empty truth and prediction score Dice 1, HD95 0, one empty Dice 0, HD95 374; "
         "ignore: cases with an empty truth are left out of the means (MONAI)")
        ("num_threads", po::value(&o.num_threads)->default_value(0), "OpenMP threads (0: OMP_NUM_THREADS, else the cores of the node shared among its ranks)")
        ("help,h", "show this help");
    po::variables_map vm;
    if (!unet::parse_command_line(argc, argv, flags, vm)) return false;
    if (o.checkpoint.empty()) throw unet::UsageError("--checkpoint: required");
    if (o.output_dir.empty()) throw unet::UsageError("--output_dir: required");
    const int forms = int(!o.inputs.empty()) + int(!o.source_dir.empty()) + int(!o.dataset.empty());
    if (forms != 1) throw unet::UsageError("--input, --source_dir, --dataset: give exactly one of them");
    if (!o.list.empty() && o.source_dir.empty()) throw unet::UsageError("--list: only with --source_dir");
    if (!o.list.empty() && o.list != "imagesTr" && o.list != "imagesTs")
        throw unet::UsageError("--list: expected imagesTr or imagesTs, got '" + o.list + "'");
    if (!(o.threshold > 0 && o.threshold < 1)) throw unet::UsageError("--threshold: expected a value in (0, 1)");
    if (o.num_threads < 0) throw unet::UsageError("--num_threads: expected 0 or more");
    if (vm.count("labels")) unet::parse_regions(o.labels);  // unknown or repeated names: UsageError
    return true;
}

// Every .nii / .nii.gz in dir, sorted (names starting with '.' or '_' skipped, as MSD's are).
std::vector<std::string> nifti_files(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = opendir(dir.c_str());
    if (!d) return out;
    while (dirent* e = readdir(d)) {
        const std::string n = e->d_name;
        if (n.empty() || n[0] == '.' || n[0] == '_') continue;
        if (unet::ends_with(n, ".nii.gz") || unet::ends_with(n, ".nii")) out.push_back(dir + "/" + n);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<CaseInput> source_dir_cases(const PredictOptions& o) {
    const std::vector<std::string> ts = nifti_files(o.source_dir + "/imagesTs");
    const std::string list = !o.list.empty() ? o.list : (!ts.empty() ? "imagesTs" : "imagesTr");
    std::vector<CaseInput> cases;
    if (list == "imagesTs") {
        if (ts.empty()) throw unet::UsageError("--source_dir: " + o.source_dir + "/imagesTs has no .nii or .nii.gz files");
        for (const std::string& f : ts) cases.push_back({unet::nifti_case_id(f), f, "", 0, 0});
    } else {
        try {
            for (const unet::MsdCase& c : unet::read_msd_index(o.source_dir).cases)
                cases.push_back({c.id, c.image, c.label, 0, 0});
        } catch (const std::runtime_error& e) {
            throw unet::UsageError(std::string("--source_dir: ") + e.what());
        }
    }
    return cases;
}

// Prepared samples grouped into cases: 3D one sample each, 2D the consecutive slices of a case
// (case ids "<case>:<z>").
std::vector<CaseInput> dataset_cases(const unet::DatasetReader& r, const std::string& split, bool two_d) {
    std::vector<CaseInput> cases;
    for (int64_t i = 0; i < r.count(split); ++i) {
        std::string id = r.case_id(split, i);
        if (two_d) id = id.substr(0, id.rfind(':'));
        if (two_d && !cases.empty() && cases.back().id == id) {
            ++cases.back().count;
            continue;
        }
        cases.push_back({id, "", "", i, 1});
    }
    return cases;
}

// Everything that can be checked before any work: each input's header, its channels and shape.
void check_nifti_inputs(const std::vector<CaseInput>& cases, const unet::UNetConfig& model) {
    for (const CaseInput& c : cases) {
        unet::NiftiHeader h;
        try {
            h = unet::read_nifti_header(c.image);
        } catch (const std::runtime_error& e) {
            throw unet::UsageError(std::string("--input: ") + e.what());
        }
        const int64_t channels = h.dim[0] >= 4 ? h.dim[4] : 1;
        if (channels != model.in_channels)
            throw unet::UsageError("--input: " + c.image + " has " + std::to_string(channels) + " channels; the model expects " +
                                   std::to_string(model.in_channels));
        if (model.dims == 3 && (h.dim[0] < 3 || h.dim[3] < 2))
            throw unet::UsageError("--input: " + c.image + " is a single slice; the 3D model needs a volume");
        if (!c.label.empty() && access(c.label.c_str(), R_OK) != 0)
            throw unet::UsageError("--source_dir: label " + c.label + " is missing or unreadable");
    }
}

// The output directory exists (created if needed) and is writable, or UsageError.
void check_output_dir(const std::string& dir) {
    try {
        unet::make_writable_dir(dir);
    } catch (const std::runtime_error& e) {
        throw unet::UsageError(std::string("--output_dir: ") + e.what());
    }
}

unet::WindowOptions window_options(const PredictOptions& o, const unet::TrainedModel& t) {
    unet::WindowOptions w;
    w.roi = o.roi.empty() ? t.training_window() : unet::parse_size_list("--roi", o.roi);
    w.overlap = o.overlap;
    w.blend = unet::parse_blend(o.blend);
    w.batch = o.sw_batch;
    w.mirror = o.mirror;
    w.validate(t.options.model);
    return w;
}

// The regions the checkpoint's outputs are, in its channel order; --labels, when given, must name
// the same ones (in any order) or UsageError.
unet::Regions model_regions(const PredictOptions& o, const unet::TrainedModel& t) {
    const unet::Regions& trained = t.options.regions;
    if (int64_t(trained.size()) != t.options.model.out_channels)
        throw unet::UsageError("--checkpoint: " + o.checkpoint + " has " + std::to_string(t.options.model.out_channels) +
                               " output channels for the " + std::to_string(trained.size()) + " regions " +
                               unet::regions_text(trained));
    if (o.labels.empty()) return trained;
    const unet::Regions asked = unet::parse_regions(o.labels);
    auto names = [](const unet::Regions& r) {
        std::vector<std::string> n;
        for (const unet::Region& x : r) n.push_back(x.name);
        std::sort(n.begin(), n.end());
        return n;
    };
    if (names(asked) != names(trained))
        throw unet::UsageError("--labels " + unet::regions_text(asked) + ": " + o.checkpoint + " was trained for " +
                               unet::regions_text(trained));
    return trained;
}

// The mask of probabilities p (one channel per region): the label map of label_map_from_regions,
// a voxel in a region when its probability is at or above the threshold (label_map_from_regions
// asks "above": the float just below it). A WT model gives the 0/1 mask.
std::vector<uint8_t> predicted_labels(const unet::Volume& p, const unet::Regions& regions, double threshold) {
    std::vector<uint8_t> m(size_t(p.voxels()));
    unet::label_map_from_regions(p.data.data(), p.voxels(), regions, m.data(), std::nextafter(float(threshold), 0.f));
    return m;
}

// A label volume (MSD labels 0..3, or a 0/1 mask) as bytes; throws naming the file for other values.
std::vector<uint8_t> truth_labels(const unet::Volume& label, const std::string& source) {
    try {
        unet::check_labels(label);
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(source + ": " + e.what());
    }
    std::vector<uint8_t> m(label.data.size());
    for (size_t i = 0; i < m.size(); ++i) m[i] = uint8_t(label.data[i]);
    return m;
}

// Channel c of v as a one-channel volume.
unet::Volume channel_of(const unet::Volume& v, int64_t c) {
    unet::Volume out;
    out.channels = 1, out.depth = v.depth, out.height = v.height, out.width = v.width;
    out.data.assign(v.channel(c), v.channel(c) + v.voxels());
    return out;
}

// The probability files of a case: "<case>_prob.nii.gz" for a WT model (one output), else
// "<case>_prob_<region>.nii.gz" per region; write(path, one-channel volume) writes one.
template <class Write>
void write_probabilities(const std::string& stem, const unet::Volume& prob, const unet::Regions& regions, Write write) {
    if (unet::is_whole_tumour_only(regions)) {
        write(stem + "_prob.nii.gz", prob);
        return;
    }
    for (size_t r = 0; r < regions.size(); ++r)
        write(stem + "_prob_" + unet::regions_text({regions[r]}) + ".nii.gz", channel_of(prob, int64_t(r)));
}

unet::Volume as_float(const std::vector<uint8_t>& m, const unet::Volume& like) {
    unet::Volume v;
    v.channels = 1, v.depth = like.depth, v.height = like.height, v.width = like.width;
    v.data.assign(m.begin(), m.end());
    return v;
}

// One metrics.csv row per case and region.
std::string csv_rows(const std::string& id, const std::vector<unet::RegionScore>& scores) {
    std::ostringstream os;
    os.precision(6);
    for (const unet::RegionScore& s : scores)
        os << id << "," << s.region << "," << s.dice << "," << s.hd95_mm << "," << s.sensitivity << "," << s.specificity
           << "," << s.predicted_ml << "," << s.true_ml << "," << int(s.truth_empty) << "," << int(s.prediction_empty)
           << "\n";
    return os.str();
}

struct CaseOutcome {
    std::string rows;  // metrics.csv rows ("" when there is no ground truth)
    double seconds = 0;
    double network_s = 0;  // of which in the network (windows or slices), the rest reading, writing, scoring
};

class CasePredictor {
   public:
    CasePredictor(const PredictOptions& o, unet::TrainedModel& t, const unet::WindowOptions& w,
                  const unet::Regions& regions, const unet::DatasetReader* dataset)
        : o_(o), t_(t), w_(w), regions_(regions), dataset_(dataset), rule_(unet::parse_empty_rule(o.empty)) {}

    CaseOutcome run(const CaseInput& c, bool draw_progress) {
        const auto t0 = Clock::now();
        std::unique_ptr<unet::ProgressBar> bar;
        unet::WindowProgress progress;
        if (draw_progress)
            progress = [&](int64_t done, int64_t total) {
                if (!bar) bar = std::make_unique<unet::ProgressBar>(c.id + ": windows", total);
                bar->update(done);
            };
        CaseOutcome out = dataset_ ? run_prepared(c, progress) : run_nifti(c, progress);
        if (bar) bar->finish();
        out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        return out;
    }

   private:
    CaseOutcome run_nifti(const CaseInput& c, const unet::WindowProgress& progress) {
        CaseOutcome out;
        unet::NiftiHeader header;
        unet::Volume image = unet::read_nifti(c.image, &header);
        const std::string image_shape = image.shape_string();
        const auto t0 = Clock::now();
        // moved in: the raw image is not needed again, and one volume less is held while predicting
        const unet::Volume prob = unet::predict_source_case(*t_.model, std::move(image), t_.preprocessing, w_, progress);
        out.network_s = std::chrono::duration<double>(Clock::now() - t0).count();
        const std::vector<uint8_t> mask = predicted_labels(prob, regions_, o_.threshold);
        unet::write_nifti_like(o_.output_dir + "/" + c.id + ".nii.gz", header, as_float(mask, prob), unet::NiftiType::uint8);
        if (o_.probabilities)
            write_probabilities(o_.output_dir + "/" + c.id, prob, regions_, [&](const std::string& f, const unet::Volume& p) {
                unet::write_nifti_like(f, header, p, unet::NiftiType::float32);
            });
        if (c.label.empty()) return out;
        const unet::Volume label = unet::read_nifti(c.label);
        if (label.channels != 1 || label.depth != prob.depth || label.height != prob.height || label.width != prob.width)
            throw std::runtime_error(c.label + ": label shape " + label.shape_string() + " differs from the image's " +
                                     image_shape);
        const unet::Spacing s{header.spacing_mm(2), header.spacing_mm(1), header.spacing_mm(0)};
        out.rows = csv_rows(c.id, unet::score_case(mask.data(), truth_labels(label, c.label).data(), prob.depth,
                                                   prob.height, prob.width, s, regions_, rule_));
        return out;
    }

    // Prepared samples: already on the model's grid; masks written there (identity header, 1 mm).
    CaseOutcome run_prepared(const CaseInput& c, const unet::WindowProgress& progress) {
        CaseOutcome out;
        const auto sp = dataset_->spatial();
        const int dims = int(sp.size());
        const int64_t C = dataset_->channels(), H = sp[sp.size() - 2], W = sp[sp.size() - 1];
        const int64_t D = dims == 3 ? sp[0] : c.count;
        unet::Volume image;
        image.resize(C, D, H, W);
        std::vector<uint8_t> truth(size_t(D * H * W));  // the masks' label map (MSD 0-3, or 0/1)
        const int64_t per = (dims == 3 ? D : 1) * H * W;
        std::vector<float> img(size_t(C * per));
        for (int64_t k = 0; k < c.count; ++k) {
            dataset_->read_labels(o_.split, c.first + k, img.data(), truth.data() + k * per);
            for (int64_t ch = 0; ch < C; ++ch)
                std::copy(img.begin() + ch * per, img.begin() + (ch + 1) * per, image.channel(ch) + k * per);
        }
        std::vector<float>().swap(img);
        const auto t0 = Clock::now();
        const unet::Volume prob = unet::predict_prepared_case(*t_.model, std::move(image), dims, w_, progress);
        out.network_s = std::chrono::duration<double>(Clock::now() - t0).count();
        const std::vector<uint8_t> mask = predicted_labels(prob, regions_, o_.threshold);
        unet::write_nifti(o_.output_dir + "/" + c.id + ".nii.gz", as_float(mask, prob), unet::NiftiType::uint8);
        if (o_.probabilities)
            write_probabilities(o_.output_dir + "/" + c.id, prob, regions_, [](const std::string& f, const unet::Volume& p) {
                unet::write_nifti(f, p, unet::NiftiType::float32);
            });
        out.rows = csv_rows(c.id, unet::score_case(mask.data(), truth.data(), D, H, W, unet::Spacing{}, regions_, rule_));
        return out;
    }

    const PredictOptions& o_;
    unet::TrainedModel& t_;
    const unet::WindowOptions& w_;
    const unet::Regions& regions_;  // the model's, in its channel order
    const unet::DatasetReader* dataset_;
    unet::EmptyRule rule_;
};

const char* kCsvHeader = "case,region,dice,hd95_mm,sensitivity,specificity,predicted_ml,true_ml,truth_empty,prediction_empty\n";

// metrics.csv, written under a temporary name and renamed.
void write_metrics(const std::string& dir, const std::string& rows) {
    const std::string path = dir + "/metrics.csv", tmp = path + ".tmp";
    {
        std::ofstream f(tmp);
        f << kCsvHeader << rows;
        if (!f.good()) {
            std::remove(tmp.c_str());
            throw std::runtime_error(path + ": write failed");
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot rename from " + tmp);
}

// Mean, median and standard deviation of Dice and HD95 per region, in the rows' region order.
void print_summary(const std::string& rows, const std::string& rule) {
    std::vector<std::string> order;
    std::map<std::string, std::vector<double>> dice, hd;
    std::istringstream in(rows);
    std::string line;
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        std::stringstream ss(line);
        std::string part;
        while (std::getline(ss, part, ',')) f.push_back(part);
        if (f.size() < 4) continue;
        if (!dice.count(f[1])) order.push_back(f[1]);
        dice[f[1]].push_back(std::stod(f[2]));
        hd[f[1]].push_back(std::stod(f[3]));
    }
    for (const std::string& region : order) {
        const std::vector<double>& values = dice[region];
        const unet::Statistic d = unet::summarize(values), h = unet::summarize(hd[region]);
        std::printf("%s: Dice mean %.4f median %.4f std %.4f | HD95 mean %.2f median %.2f std %.2f mm | %lld of %zu cases "
                    "(empty rule %s)\n",
                    region.c_str(), d.mean, d.median, d.std, h.mean, h.median, h.std, (long long)d.count,
                    values.size(), rule.c_str());
    }
}

// The cases of the one input form given, checked against the model (of `regions`); `dataset` is
// opened for --dataset.
std::vector<CaseInput> input_cases(const PredictOptions& o, const unet::TrainedModel& t, const unet::Regions& regions,
                                   std::unique_ptr<unet::DatasetReader>* dataset) {
    std::vector<CaseInput> cases;
    if (!o.dataset.empty()) {
        try {
            *dataset = std::make_unique<unet::DatasetReader>(o.dataset);
        } catch (const std::runtime_error& e) {
            throw unet::UsageError(std::string("--dataset: ") + e.what());
        }
        const unet::DatasetReader& d = **dataset;
        const int dims = d.attributes().mode == "2d" ? 2 : 3;
        if (dims != t.options.model.dims || d.channels() != t.options.model.in_channels)
            throw unet::UsageError("--dataset: " + o.dataset + " holds " + std::to_string(dims) + "D samples with " +
                                   std::to_string(d.channels()) + " channels; the checkpoint is a " +
                                   std::to_string(t.options.model.dims) + "D model for " +
                                   std::to_string(t.options.model.in_channels));
        if (d.attributes().mask_labels == unet::kMaskLabelsBinary && !unet::is_whole_tumour_only(regions))
            throw unet::UsageError("--dataset: " + o.dataset +
                                   " has binary tumour masks (format version 1 or Intel's .npy data), which tell the "
                                   "whole tumour only; cannot score " + o.checkpoint + ", trained for " +
                                   unet::regions_text(regions));
        if (!d.has_split(o.split)) throw unet::UsageError("--split: " + o.dataset + " has no '" + o.split + "' split");
        cases = dataset_cases(d, o.split, dims == 2);
    } else {
        if (!t.has_preprocessing)
            throw unet::UsageError("--checkpoint: " + o.checkpoint + " records no preprocessing and its dataset '" +
                                   t.options.data + "' is not here; predict with --dataset, or copy the dataset there");
        if (t.preprocessing.dims != t.options.model.dims)
            throw unet::UsageError("--checkpoint: a " + std::to_string(t.options.model.dims) + "D model trained on " +
                                   std::to_string(t.preprocessing.dims) + "D data");
        if (!o.inputs.empty())
            for (const std::string& f : o.inputs) cases.push_back({unet::nifti_case_id(f), f, "", 0, 0});
        else
            cases = source_dir_cases(o);
        check_nifti_inputs(cases, t.options.model);
    }
    if (cases.empty()) throw unet::UsageError("no cases to predict");
    return cases;
}

// Collective: every rank's metrics rows ("case index <tab> row" lines) on rank 0, in case order
// (empty elsewhere).
std::string gather_rows(unet::Comm& comm, const std::string& mine) {
    std::vector<std::pair<size_t, std::string>> all;
    auto collect = [&](const std::string& text) {
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);) {
            const size_t tab = line.find('\t');
            all.emplace_back(std::stoul(line.substr(0, tab)), line.substr(tab + 1) + "\n");
        }
    };
    constexpr int kRowsTag = 31;
    if (!comm.is_root()) {
        comm.send_text(0, kRowsTag, mine);
        return "";
    }
    collect(mine);
    for (int r = 1; r < comm.size(); ++r) collect(comm.receive_text(r, kRowsTag));
    std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string rows;
    for (const auto& r : all) rows += r.second;
    return rows;
}

int run(int argc, char** argv) {
    PredictOptions o;
    if (!parse(argc, argv, o)) return 0;
    unet::Comm& comm = unet::Comm::world();
    // Every rank predicts its own cases: all of them count when the node's cores are shared.
    unet::place_threads(comm, o.num_threads, true, "", "unet_predict");
    unet::parse_empty_rule(o.empty);
    unet::TrainedModel t = unet::load_trained_model(o.checkpoint);
    t.model->drop_gradients();  // forwards only
    const unet::Regions regions = model_regions(o, t);
    const unet::WindowOptions w = window_options(o, t);
    std::unique_ptr<unet::DatasetReader> dataset;
    const std::vector<CaseInput> cases = input_cases(o, t, regions, &dataset);
    check_output_dir(o.output_dir);

    if (comm.is_root()) {
        std::printf("unet_predict: %zu cases on %d rank%s; %dD model for %s, window %s, overlap %.2f, %s blending%s\n",
                    cases.size(), comm.size(), comm.size() > 1 ? "s" : "", t.options.model.dims,
                    unet::regions_text(regions).c_str(),
                    unet::dims_text(w.roi, "x").c_str(), w.overlap, unet::blend_name(w.blend), w.mirror ? ", mirrored" : "");
        if (!dataset) std::printf("preprocessing: %s\n", t.preprocessing.describe().c_str());
        std::fflush(stdout);
    }
    CasePredictor predictor(o, t, w, regions, dataset.get());
    const auto t0 = Clock::now();
    std::string mine;
    for (size_t i = size_t(comm.rank()); i < cases.size(); i += size_t(comm.size())) {
        const CaseOutcome r = predictor.run(cases[i], comm.size() == 1);
        // Each case's memory is its own: the peak of a test split is the peak of its largest case.
        t.model->release_inference_plans();
        std::istringstream rows(r.rows);
        for (std::string line; std::getline(rows, line);) mine += std::to_string(i) + "\t" + line + "\n";
        std::printf("%s[%zu/%zu] %s: %.1f s (network %.1f s)%s\n",
                    comm.size() > 1 ? ("rank " + std::to_string(comm.rank()) + " ").c_str() : "", i + 1, cases.size(),
                    cases[i].id.c_str(), r.seconds, r.network_s, r.rows.empty() ? " (no ground truth)" : "");
        std::fflush(stdout);
    }
    const std::string rows = gather_rows(comm, mine);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    double peak = unet::peak_rss_mib();
    comm.sum(&peak, 1);  // summed: the job's memory, all ranks together
    if (!comm.is_root()) return 0;
    std::printf("%zu cases in %.1f s (%.2f s per case per rank), peak RSS %.0f MiB%s; masks in %s\n", cases.size(),
                seconds, seconds * comm.size() / double(cases.size()), peak, comm.size() > 1 ? " (all ranks)" : "",
                o.output_dir.c_str());
    if (!rows.empty()) {
        write_metrics(o.output_dir, rows);
        print_summary(rows, o.empty);
        std::printf("per case and region: %s/metrics.csv\n", o.output_dir.c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // Every buffer of 4 MiB or more in pages of its own, given back when freed. glibc otherwise
    // raises this threshold to the size of each large block freed (up to 32 MiB), and the next
    // case's volumes then come from the heap, where the freed plan and volumes of earlier cases
    // leave holes: 4 cases of 96x128x128 peaked 9% above one, with this 1%.
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    return unet::run_program("unet_predict", [&] { return run(argc, argv); });
}
