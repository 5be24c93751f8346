// metrics_score: unet::score_case on masks read from raw files, for tests/e2e/metrics_vs_monai.sh.
//
//   metrics_score MANIFEST
//     MANIFEST: one case per line, "NAME D H W SZ SY SX REGIONS RULE PRED TRUTH": shape, spacing in
//     mm (z y x), REGIONS wt (whole_tumour_region) or brats (brats_regions), RULE brats | ignore,
//     PRED and TRUTH raw uint8 label maps of D*H*W bytes, x fastest. Prints per region
//     "NAME REGION dice hd95_mm sensitivity specificity predicted_ml true_ml truth_empty
//     prediction_empty" (17 significant digits, nan for NaN).
//   metrics_score --bench [REPEATS]
//     Times score_case on a full-size 155 x 240 x 240 case at 1 mm with a realistic tumour
//     (nested, irregular ellipsoids; the prediction a shifted, slightly larger copy): prints the
//     median milliseconds for the WT region and for the three BraTS regions.
// Exit 1 with one line on stderr on bad input.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "unet/infer/segmentation_metrics.h"

namespace {

std::vector<uint8_t> read_raw(const std::string& path, int64_t n) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("metrics_score: cannot open " + path);
    std::vector<uint8_t> v(static_cast<size_t>(n));
    in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n));
    if (in.gcount() != std::streamsize(n) || in.peek() != EOF)
        throw std::runtime_error("metrics_score: " + path + " is not " + std::to_string(n) + " bytes");
    return v;
}

int score_manifest(const std::string& manifest) {
    std::ifstream in(manifest);
    if (!in) throw std::runtime_error("metrics_score: cannot open " + manifest);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        std::istringstream is(line);
        std::string name, regions, rule, pred_path, truth_path;
        int64_t D, H, W;
        unet::Spacing s;
        if (!(is >> name >> D >> H >> W >> s.z >> s.y >> s.x >> regions >> rule >> pred_path >> truth_path))
            throw std::runtime_error("metrics_score: bad manifest line: " + line);
        if (regions != "wt" && regions != "brats") throw std::runtime_error("metrics_score: regions " + regions);
        const auto p = read_raw(pred_path, D * H * W), t = read_raw(truth_path, D * H * W);
        const auto scores = unet::score_case(p.data(), t.data(), D, H, W, s,
                                             regions == "wt" ? unet::whole_tumour_region() : unet::brats_regions(),
                                             unet::parse_empty_rule(rule));
        for (const auto& r : scores)
            std::printf("%s %s %.17g %.17g %.17g %.17g %.17g %.17g %d %d\n", name.c_str(), r.region.c_str(), r.dice,
                        r.hd95_mm, r.sensitivity, r.specificity, r.predicted_ml, r.true_ml, int(r.truth_empty),
                        int(r.prediction_empty));
    }
    return 0;
}

// Label map of nested ellipsoids with a wobbly boundary: oedema (1) around non-enhancing (2)
// around enhancing (3), centred at c, outer radii r (voxels).
std::vector<uint8_t> tumour(int64_t D, int64_t H, int64_t W, const double c[3], const double r[3], uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> phase(0, 6.283);
    const double p1 = phase(rng), p2 = phase(rng), p3 = phase(rng);
    std::vector<uint8_t> m(static_cast<size_t>(D * H * W), 0);
    for (int64_t z = 0; z < D; ++z)
        for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x) {
                const double dz = (z - c[0]) / r[0], dy = (y - c[1]) / r[1], dx = (x - c[2]) / r[2];
                const double rho = std::sqrt(dz * dz + dy * dy + dx * dx);
                // lobes: the radius varies by up to 20% with direction
                const double wobble = 1 + 0.1 * std::sin(3 * std::atan2(dy, dx) + p1) +
                                      0.1 * std::sin(2 * std::atan2(dz, dx) + p2) + 0.05 * std::sin(5 * dz + p3);
                const double q = rho / wobble;
                m[size_t((z * H + y) * W + x)] = q < 0.35 ? 3 : q < 0.6 ? 2 : q < 1.0 ? 1 : 0;
            }
    return m;
}

int bench(int repeats) {
    const int64_t D = 155, H = 240, W = 240;
    const double ct[3] = {80, 110, 130}, rt[3] = {22, 30, 26};
    const double cp[3] = {82, 112, 127}, rp[3] = {24, 31, 28};
    const auto truth = tumour(D, H, W, ct, rt, 1), pred = tumour(D, H, W, cp, rp, 2);
    const unet::Spacing s{1, 1, 1};
    auto time_ms = [&](const std::vector<unet::Region>& regions, std::vector<unet::RegionScore>& out) {
        std::vector<double> ms;
        for (int i = 0; i < repeats; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            out = unet::score_case(pred.data(), truth.data(), D, H, W, s, regions, unet::EmptyRule::brats);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(ms.begin(), ms.end());
        return ms[ms.size() / 2];
    };
    std::vector<unet::RegionScore> wt, all;
    const double t_wt = time_ms(unet::whole_tumour_region(), wt);
    const double t_all = time_ms(unet::brats_regions(), all);
    std::printf("bench %lldx%lldx%lld: WT %.1f ms, WT+TC+ET %.1f ms (median of %d)\n", (long long)D, (long long)H,
                (long long)W, t_wt, t_all, repeats);
    for (const auto& r : all)
        std::printf("  %s dice %.4f hd95 %.2f mm, predicted %.1f ml, true %.1f ml\n", r.region.c_str(), r.dice,
                    r.hd95_mm, r.predicted_ml, r.true_ml);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc >= 2 && std::string(argv[1]) == "--bench") return bench(argc >= 3 ? std::max(1, std::atoi(argv[2])) : 5);
        if (argc != 2) {
            std::fprintf(stderr, "usage: metrics_score MANIFEST | metrics_score --bench [REPEATS]\n");
            return 2;
        }
        return score_manifest(argv[1]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
