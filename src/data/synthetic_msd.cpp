#include "unet/data/synthetic_msd.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

#include "unet/core/rng.h"
#include "unet/data/nifti.h"
#include "unet/io/atomic_file.h"

namespace unet {

namespace {

// Geometry is defined in "reference millimetres": the default 240 x 240 x 155 volume at 1 mm, so
// a smaller volume shows the same brain at a coarser voxel size.
constexpr double kRefW = 240, kRefH = 240, kRefD = 155;

constexpr int kFlair = 0, kT1 = 1, kT1gd = 2, kT2 = 3;

inline double smoothstep(double e0, double e1, double x) {
    const double t = std::min(1.0, std::max(0.0, (x - e0) / (e1 - e0)));
    return t * t * (3 - 2 * t);
}

inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Approximately N(0, 1) from one hash: Irwin-Hall sum of four 16-bit uniforms. Cheap, and a
// function of (key, index) only, so the noise does not depend on the thread count.
inline float hash_normal(uint64_t key, uint64_t index) {
    const uint64_t h = mix64(key ^ (index * 0x9E3779B97F4A7C15ull));
    const float s = float(h & 0xFFFF) + float((h >> 16) & 0xFFFF) + float((h >> 32) & 0xFFFF) + float(h >> 48);
    return (s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

// Smooth value noise: a periodic lattice of normal values with cell size `cell` (reference mm),
// interpolated with smoothstep weights. Roughly N(0, 0.5); periodic so any offset is valid.
class NoiseField {
   public:
    NoiseField() = default;
    // The period is at most 48 cells: fine textures repeat every ~10 cm, which nobody sees, and a
    // small lattice keeps small volumes cheap.
    NoiseField(Rng& rng, double cell) : cell_(cell) {
        n_ = std::min(48, std::max(4, int(std::ceil(260.0 / cell)) + 1));
        v_.resize(size_t(n_) * n_ * n_);
        const uint64_t key = rng.next_u64();
        for (size_t i = 0; i < v_.size(); ++i) v_[i] = hash_normal(key, i);
    }
    float operator()(double x, double y, double z) const {
        const double fx = x / cell_, fy = y / cell_, fz = z / cell_;
        const double flx = std::floor(fx), fly = std::floor(fy), flz = std::floor(fz);
        const float tx = float(fx - flx), ty = float(fy - fly), tz = float(fz - flz);
        const int x0 = wrap(int64_t(flx)), y0 = wrap(int64_t(fly)), z0 = wrap(int64_t(flz));
        const int x1 = x0 + 1 == n_ ? 0 : x0 + 1, y1 = y0 + 1 == n_ ? 0 : y0 + 1, z1 = z0 + 1 == n_ ? 0 : z0 + 1;
        const float wx = tx * tx * (3 - 2 * tx), wy = ty * ty * (3 - 2 * ty), wz = tz * tz * (3 - 2 * tz);
        auto at = [&](int a, int b, int c) { return v_[(size_t(c) * n_ + b) * n_ + a]; };
        const float c00 = at(x0, y0, z0) + wx * (at(x1, y0, z0) - at(x0, y0, z0));
        const float c10 = at(x0, y1, z0) + wx * (at(x1, y1, z0) - at(x0, y1, z0));
        const float c01 = at(x0, y0, z1) + wx * (at(x1, y0, z1) - at(x0, y0, z1));
        const float c11 = at(x0, y1, z1) + wx * (at(x1, y1, z1) - at(x0, y1, z1));
        const float c0 = c00 + wy * (c10 - c00), c1 = c01 + wy * (c11 - c01);
        return c0 + wz * (c1 - c0);
    }

   private:
    int wrap(int64_t i) const {
        const int64_t m = i % n_;
        return int(m < 0 ? m + n_ : m);
    }
    double cell_ = 1;
    int n_ = 0;
    std::vector<float> v_;
};

struct Vec3 {
    double x = 0, y = 0, z = 0;
};

// One tumour: nested irregular blobs (oedema > active core > necrosis) around a centre, with its
// own rotation, radii, boundary perturbation and intensities per modality.
struct Tumour {
    Vec3 centre;              // reference mm
    double rot[3][3];         // world -> tumour frame
    double radius[3];         // oedema semi-axes, mm
    double bound = 0;         // bounding-sphere radius, mm
    double core = 0.5;        // core boundary as a fraction of the oedema boundary
    double necrosis = 0.5;    // necrosis boundary as a fraction of the core boundary (0: none)
    Vec3 noise_offset;        // where this tumour samples the shared irregularity field
    // Low-frequency radial perturbation: sum_k amp cos(freq (w_k . u) + phase).
    std::array<Vec3, 4> w, w_core;
    std::array<double, 4> amp, freq, phase, amp_core, freq_core, phase_core;
    // Intensities relative to white matter = 1.
    double oed_flair = 0.6;   // FLAIR excess at the inner edge of the oedema, fading outwards
    double oed_t2 = 1.6;      // T2 level in the oedema (sharp edge)
    double oed_t1 = 0.9;      // factor on T1w / T1gd tissue values
    double oed_fade = 0.7;    // depth (0 outer edge .. 1 core edge) where FLAIR reaches full excess
    double enh[4] = {1.3, 0.82, 1.8, 1.45};
    double nec[4] = {1.05, 0.55, 0.5, 1.9};
};

struct CaseModel {
    double scale[3];          // reference mm per voxel (x, y, z)
    double pv = 1;            // partial-volume width: one voxel, mm
    Vec3 brain_c;
    double brain_r[3];
    Vec3 vent_c[2];
    double vent_r[3];
    double vent_bend = 0;
    double rim = 1.5;         // mean thickness of surface CSF, mm
    double sulcus_width = 0.05;  // half-width of a sulcus in units of the sulci noise field
    double sulcus_depth = 20;    // mm
    double cortex = 7;        // mean depth of the cortical ribbon, mm
    double fissure = 1.2;     // half-width of the interhemispheric fissure, mm
    Vec3 nuc_c[2];            // deep grey nuclei
    double nuc_r[3];
    double gain[4];           // scanner scale per modality
    double noise = 0.04;
    double bias_amp = 0.05;
    Vec3 bias_grad[4];
    double wm[4], gm[4], csf[4];
    double texture[4][2];     // weights of the two texture fields per modality
    NoiseField surface, sulci, gm_field, tex_a, tex_b, bias, irregular;
    std::vector<Tumour> tumours;
    uint64_t noise_key = 0;
};

Vec3 random_unit(Rng& rng) {
    for (;;) {
        Vec3 v{rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-1, 1)};
        const double n = std::sqrt(v.x * v.x + v.y * v.y + v.z * v.z);
        if (n > 0.1 && n <= 1) return {v.x / n, v.y / n, v.z / n};
    }
}

void random_rotation(Rng& rng, double (&m)[3][3]) {
    // Uniform random unit quaternion (Shoemake).
    const double u1 = rng.uniform(), u2 = rng.uniform() * 2 * M_PI, u3 = rng.uniform() * 2 * M_PI;
    const double a = std::sqrt(1 - u1) * std::sin(u2), b = std::sqrt(1 - u1) * std::cos(u2);
    const double c = std::sqrt(u1) * std::sin(u3), d = std::sqrt(u1) * std::cos(u3);
    const double w = d, x = a, y = b, z = c;
    m[0][0] = 1 - 2 * (y * y + z * z), m[0][1] = 2 * (x * y - z * w), m[0][2] = 2 * (x * z + y * w);
    m[1][0] = 2 * (x * y + z * w), m[1][1] = 1 - 2 * (x * x + z * z), m[1][2] = 2 * (y * z - x * w);
    m[2][0] = 2 * (x * z - y * w), m[2][1] = 2 * (y * z + x * w), m[2][2] = 1 - 2 * (x * x + y * y);
}

// Number of tumours of case `index`: every fifth case (3, 8, 13, ...) is tumour-free, the others
// have 1 (50%), 2 (30%) or 3 (20%).
int tumour_count(int index, Rng& rng) {
    if (index % 5 == 3) return 0;
    const float u = rng.uniform();
    return u < 0.5f ? 1 : u < 0.8f ? 2 : 3;
}

// One tumour of case model `m` (its centre inside the inner 60% of the brain ellipsoid).
Tumour make_tumour(Rng& rng, const CaseModel& m) {
    Tumour tu;
    Vec3 u;
    do {
        u = {rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-1, 1)};
    } while (u.x * u.x + u.y * u.y + u.z * u.z > 1);
    tu.centre = {m.brain_c.x + 0.6 * u.x * m.brain_r[0], m.brain_c.y + 0.6 * u.y * m.brain_r[1],
                 m.brain_c.z + 0.6 * u.z * m.brain_r[2]};
    random_rotation(rng, tu.rot);
    const double r = rng.uniform(12, 32);
    for (double& ri : tu.radius) ri = r * rng.uniform(0.75f, 1.25f);
    tu.core = rng.uniform(0.55f, 0.85f);
    tu.necrosis = rng.uniform() < 0.2f ? 0.0 : rng.uniform(0.5f, 0.85f);
    tu.noise_offset = {rng.uniform(0, 200), rng.uniform(0, 200), rng.uniform(0, 200)};
    double pert = 0;
    for (int k = 0; k < 4; ++k) {
        tu.w[k] = random_unit(rng);
        tu.amp[k] = rng.uniform(0.03f, 0.09f);
        tu.freq[k] = rng.uniform(1.5f, 4.5f);
        tu.phase[k] = rng.uniform(0, 2 * M_PI);
        pert += tu.amp[k];
        tu.w_core[k] = random_unit(rng);
        tu.amp_core[k] = rng.uniform(0.03f, 0.08f);
        tu.freq_core[k] = rng.uniform(1.5f, 4.5f);
        tu.phase_core[k] = rng.uniform(0, 2 * M_PI);
    }
    tu.bound = std::max({tu.radius[0], tu.radius[1], tu.radius[2]}) * (1 + pert + 0.45) + 2;  // |irr| <= 0.12 * 3.47
    tu.oed_flair = rng.uniform(0.35f, 0.75f);
    tu.oed_t2 = rng.uniform(1.7f, 2.0f);
    tu.oed_t1 = rng.uniform(0.78f, 0.88f);
    tu.oed_fade = rng.uniform(0.5f, 0.9f);
    tu.enh[kFlair] = rng.uniform(1.05f, 1.3f);
    tu.enh[kT1] = rng.uniform(0.7f, 0.85f);
    tu.enh[kT1gd] = rng.uniform(1.5f, 2.1f);
    tu.enh[kT2] = rng.uniform(1.55f, 1.8f);
    tu.nec[kFlair] = rng.uniform(0.95f, 1.2f);
    tu.nec[kT1] = rng.uniform(0.45f, 0.7f);
    tu.nec[kT1gd] = rng.uniform(0.4f, 0.65f);
    tu.nec[kT2] = rng.uniform(1.7f, 2.1f);
    return tu;
}

CaseModel make_model(const SyntheticSpec& spec, int index) {
    CaseModel m;
    Rng rng(mix64(spec.seed * 0x9E3779B97F4A7C15ull + uint64_t(index) * 0xD1B54A32D192ED03ull + 0x5EEDull));
    m.scale[0] = kRefW / double(spec.width);
    m.scale[1] = kRefH / double(spec.height);
    m.scale[2] = kRefD / double(spec.depth);
    m.pv = std::max({m.scale[0], m.scale[1], m.scale[2], 1.0});
    m.brain_c = {kRefW / 2 + rng.uniform(-4, 4), kRefH / 2 + rng.uniform(-5, 5), kRefD / 2 + rng.uniform(-3, 3)};
    m.brain_r[0] = 68 * rng.uniform(0.93f, 1.07f);
    m.brain_r[1] = 84 * rng.uniform(0.93f, 1.07f);
    m.brain_r[2] = 60 * rng.uniform(0.93f, 1.07f);
    const double atrophy = rng.uniform(0.8f, 1.35f);
    m.vent_r[0] = 6.5 * atrophy, m.vent_r[1] = 27 * rng.uniform(0.9f, 1.1f), m.vent_r[2] = 10 * atrophy;
    const double vx = 7.5 * rng.uniform(0.85f, 1.15f), vy = rng.uniform(-4, 4), vz = 8 + rng.uniform(-3, 3);
    m.vent_c[0] = {m.brain_c.x - vx, m.brain_c.y + vy, m.brain_c.z + vz};
    m.vent_c[1] = {m.brain_c.x + vx, m.brain_c.y + vy, m.brain_c.z + vz};
    m.vent_bend = rng.uniform(6, 10);
    m.rim = rng.uniform(1.2f, 2.4f) * (0.8 + 0.2 * atrophy);
    m.sulcus_width = rng.uniform(0.06f, 0.09f) * atrophy;
    m.sulcus_depth = rng.uniform(16, 24);
    m.cortex = rng.uniform(5, 8);
    const double nx = 15 * rng.uniform(0.9f, 1.1f);
    m.nuc_c[0] = {m.brain_c.x - nx, m.brain_c.y - 6, m.brain_c.z + 2};
    m.nuc_c[1] = {m.brain_c.x + nx, m.brain_c.y - 6, m.brain_c.z + 2};
    m.nuc_r[0] = 8 * rng.uniform(0.9f, 1.1f), m.nuc_r[1] = 15 * rng.uniform(0.9f, 1.1f), m.nuc_r[2] = 10 * rng.uniform(0.9f, 1.1f);
    m.fissure = rng.uniform(0.9f, 1.5f);

    const double base_gain[4] = {350, 480, 520, 420};
    for (int c = 0; c < 4; ++c) {
        m.gain[c] = base_gain[c] * rng.uniform(0.7f, 1.3f);
        m.bias_grad[c] = {rng.uniform(-1, 1) * 0.0003, rng.uniform(-1, 1) * 0.0003, rng.uniform(-1, 1) * 0.0003};
    }
    m.noise = rng.uniform(0.03f, 0.05f);
    m.bias_amp = rng.uniform(0.02f, 0.04f);
    // Tissue contrasts (white matter = 1): FLAIR suppresses fluid, T2 shows it bright, grey
    // matter is brighter than white in FLAIR/T2 and darker in T1.
    const double wm[4] = {1.0, 1.0, 1.0, 1.0};
    const double gm[4] = {1.12, 0.78, 0.80, 1.22};
    const double csf[4] = {0.30, 0.35, 0.38, 2.10};
    for (int c = 0; c < 4; ++c) {
        m.wm[c] = wm[c];
        m.gm[c] = gm[c] * (1 + 0.03 * rng.normal());
        m.csf[c] = csf[c] * (1 + 0.05 * rng.normal());
        m.texture[c][0] = 0.035 * rng.uniform(0.7f, 1.3f) * (rng.uniform() < 0.5f ? -1 : 1);
        m.texture[c][1] = 0.025 * rng.uniform(0.7f, 1.3f);
    }
    m.surface = NoiseField(rng, 14);
    m.sulci = NoiseField(rng, 12);
    m.gm_field = NoiseField(rng, 9);
    m.tex_a = NoiseField(rng, 5);
    m.tex_b = NoiseField(rng, 2.2);
    m.bias = NoiseField(rng, 80);
    m.irregular = NoiseField(rng, 11);
    m.noise_key = rng.next_u64();

    const int nt = tumour_count(index, rng);
    for (int t = 0; t < nt; ++t) m.tumours.push_back(make_tumour(rng, m));
    return m;
}

inline double perturb(const std::array<Vec3, 4>& w, const std::array<double, 4>& amp, const std::array<double, 4>& freq,
                      const std::array<double, 4>& phase, double ux, double uy, double uz) {
    double s = 0;
    for (int k = 0; k < 4; ++k) s += amp[k] * std::cos(freq[k] * (w[k].x * ux + w[k].y * uy + w[k].z * uz) + phase[k]);
    return s;
}

// Tumour region at a point: 0 outside, 1 oedema, 2 active (enhancing) core, 3 necrosis; `depth`
// is the position inside the oedema shell (0 at its outer edge, 1 at the core edge).
inline int tumour_level(const CaseModel& m, const Tumour& t, double px, double py, double pz, double& depth) {
    const double dx = px - t.centre.x, dy = py - t.centre.y, dz = pz - t.centre.z;
    if (dx * dx + dy * dy + dz * dz > t.bound * t.bound) return 0;
    const double qx = (t.rot[0][0] * dx + t.rot[1][0] * dy + t.rot[2][0] * dz) / t.radius[0];
    const double qy = (t.rot[0][1] * dx + t.rot[1][1] * dy + t.rot[2][1] * dz) / t.radius[1];
    const double qz = (t.rot[0][2] * dx + t.rot[1][2] * dy + t.rot[2][2] * dz) / t.radius[2];
    const double rho = std::sqrt(qx * qx + qy * qy + qz * qz);
    const double inv = rho > 1e-9 ? 1 / rho : 0;
    const double ux = qx * inv, uy = qy * inv, uz = qz * inv;
    const double irr = 0.12 * m.irregular(px + t.noise_offset.x, py + t.noise_offset.y, pz + t.noise_offset.z);
    const double outer = 1 + perturb(t.w, t.amp, t.freq, t.phase, ux, uy, uz) + irr;
    if (rho >= outer) return 0;
    // The core stays inside the oedema with at least a thin shell around it.
    const double core = std::min(0.9 * outer, t.core * (1 + perturb(t.w_core, t.amp_core, t.freq_core, t.phase_core,
                                                                    ux, uy, uz) + 0.5 * irr));
    if (rho >= core) {
        depth = (outer - rho) / std::max(1e-6, outer - core);
        return 1;
    }
    depth = 1;
    return rho < core * t.necrosis ? 3 : 2;
}

}  // namespace

// The share of cerebrospinal fluid at (px, py, pz), `depth_mm` below the brain surface, where the
// sulcus field is `sul`.
static double csf_share(const CaseModel& m, double px, double py, double pz, double depth_mm, double sul) {
    // Cerebrospinal fluid: a thin surface layer, sulci (thin sheets where a smooth noise
    // field crosses zero, reaching ~20 mm deep), the interhemispheric fissure and two
    // curved lateral ventricles; partial volume over one voxel.
    const double rim = m.rim * (1 + 0.5 * m.gm_field(px + 50, py, pz));
    double csf = 1 - smoothstep(rim - m.pv / 2, rim + m.pv / 2, depth_mm);
    const double taper = 1 - smoothstep(m.sulcus_depth * 0.6, m.sulcus_depth, depth_mm);
    const double sheet = m.sulcus_width * taper;
    if (sheet > 0) csf = std::max(csf, 1 - smoothstep(sheet * 0.5, sheet * 1.5, std::fabs(sul)));
    if (depth_mm < 35 && pz > m.brain_c.z - 5) {
        const double d = std::fabs(px - m.brain_c.x) - m.fissure;
        csf = std::max(csf, 1 - smoothstep(-m.pv / 2, m.pv / 2, d));
    }
    for (int v = 0; v < 2; ++v) {
        const double vy = (py - m.vent_c[v].y) / m.vent_r[1];
        const double vz = (pz - m.vent_c[v].z - m.vent_bend * vy * vy) / m.vent_r[2];
        const double vx = (px - m.vent_c[v].x) / m.vent_r[0];
        const double q = std::sqrt(vx * vx + vy * vy + vz * vz);
        if (q < 1.6) csf = std::max(csf, 1 - smoothstep(-m.pv / 2, m.pv / 2, (q - 1) * m.vent_r[0]));
    }
    return csf;
}

// The share of grey matter at (px, py, pz), like csf_share.
static double gm_share(const CaseModel& m, double px, double py, double pz, double depth_mm, double sul) {
    // Grey matter: the cortex (a folded ribbon under the surface that follows the sulci)
    // and the deep nuclei beside the ventricles; white matter elsewhere.
    const double g = m.gm_field(px, py, pz);
    const double ribbon = m.cortex * (1 + 0.35 * g);
    double gm = 1 - smoothstep(ribbon - m.pv / 2, ribbon + m.pv / 2, depth_mm);
    const double fold = m.sulcus_width * 4.5 * (1 - smoothstep(m.sulcus_depth, m.sulcus_depth + 5, depth_mm));
    if (fold > 0) gm = std::max(gm, 1 - smoothstep(fold * 0.8, fold * 1.2, std::fabs(sul)));
    for (int v = 0; v < 2; ++v) {
        const double nx = (px - m.nuc_c[v].x) / m.nuc_r[0], ny = (py - m.nuc_c[v].y) / m.nuc_r[1],
                     nz = (pz - m.nuc_c[v].z) / m.nuc_r[2];
        const double q = std::sqrt(nx * nx + ny * ny + nz * nz) + 0.15 * g;
        if (q < 1.5) gm = std::max(gm, 0.85 * (1 - smoothstep(1 - 0.1, 1 + 0.1, q)));
    }
    return gm;
}

void synthesize_case(const SyntheticSpec& spec, int index, Volume& image, Volume& label) {
    if (spec.width < 8 || spec.height < 8 || spec.depth < 4)
        throw std::runtime_error("synthetic MSD: volume " + std::to_string(spec.width) + "x" + std::to_string(spec.height) +
                                 "x" + std::to_string(spec.depth) + " is too small (at least 8x8x4)");
    const CaseModel m = make_model(spec, index);
    const int64_t W = spec.width, H = spec.height, D = spec.depth;
    image.resize(4, D, H, W);
    label.resize(1, D, H, W);
    const int64_t vox = D * H * W;
    float* img = image.data.data();
    float* lab = label.data.data();
    const double rmean = (m.brain_r[0] + m.brain_r[1] + m.brain_r[2]) / 3;

#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t z = 0; z < D; ++z) {
        const double pz = (double(z) + 0.5) * m.scale[2];
        for (int64_t y = 0; y < H; ++y) {
            const double py = (double(y) + 0.5) * m.scale[1];
            for (int64_t x = 0; x < W; ++x) {
                const double px = (double(x) + 0.5) * m.scale[0];
                const double ex = (px - m.brain_c.x) / m.brain_r[0], ey = (py - m.brain_c.y) / m.brain_r[1],
                             ez = (pz - m.brain_c.z) / m.brain_r[2];
                const double r = std::sqrt(ex * ex + ey * ey + ez * ez);
                if (r > 1.12) continue;  // background stays exactly 0
                const double surf = 1 + 0.035 * m.surface(px, py, pz);
                if (r >= surf) continue;
                const int64_t i = (z * H + y) * W + x;
                const double depth_mm = (surf - r) * rmean;  // distance below the brain surface, roughly

                const double sul = m.sulci(px, py, pz);
                double csf = csf_share(m, px, py, pz, depth_mm, sul);
                const double gm = gm_share(m, px, py, pz, depth_mm, sul);

                // Tumours: the deepest region of any tumour wins.
                int level = 0;
                double depth = 0;
                const Tumour* owner = nullptr;
                for (const Tumour& t : m.tumours) {
                    double d = 0;
                    const int l = tumour_level(m, t, px, py, pz, d);
                    if (l > level || (l == 1 && level == 1 && d > depth)) level = l, depth = d, owner = &t;
                }
                lab[i] = level == 0 ? 0.f : level == 1 ? 1.f : level == 2 ? 3.f : 2.f;
                if (level > 0) csf = level == 1 ? csf * 0.3 : 0.0;  // the tumour displaces fluid

                const double ta = m.tex_a(px, py, pz), tb = m.tex_b(px, py, pz);
                const double bias = 1 + m.bias_amp * m.bias(px, py, pz);
                for (int c = 0; c < 4; ++c) {
                    double tissue = (1 - gm) * m.wm[c] + gm * m.gm[c];
                    tissue *= 1 + m.texture[c][0] * ta + m.texture[c][1] * tb;
                    double val = tissue;
                    if (level == 1) {
                        // Oedema: T2 bright with a sharp edge, FLAIR bright fading towards the outer
                        // edge, T1 slightly dark, no enhancement.
                        if (c == kFlair) val = tissue + owner->oed_flair * smoothstep(0.0, owner->oed_fade, depth);
                        else if (c == kT2) val = tissue + (owner->oed_t2 - 1.1) * smoothstep(0.0, 0.06, depth);
                        else val = tissue * owner->oed_t1;
                    } else if (level == 2) {
                        val = owner->enh[c] * (1 + 0.6 * (m.texture[c][0] * ta + m.texture[c][1] * tb));
                    } else if (level == 3) {
                        val = owner->nec[c] * (1 + 0.6 * (m.texture[c][0] * ta + m.texture[c][1] * tb));
                    }
                    val = (1 - csf) * val + csf * m.csf[c];
                    const double lin = m.bias_grad[c].x * (px - m.brain_c.x) + m.bias_grad[c].y * (py - m.brain_c.y) +
                                       m.bias_grad[c].z * (pz - m.brain_c.z);
                    val *= bias * (1 + lin);
                    val += m.noise * hash_normal(m.noise_key + uint64_t(c), uint64_t(i));
                    // Brain voxels stay strictly positive: zero means "outside the brain".
                    img[c * vox + i] = float(std::max(0.02, val) * m.gain[c]);
                }
            }
        }
    }
}

void write_synthetic_msd(const std::string& dir, const SyntheticSpec& spec,
                         const std::function<void(int, int)>& progress) {
    namespace fs = std::filesystem;
    if (spec.cases < 1) throw std::runtime_error("synthetic MSD " + dir + ": need at least one case");
    std::error_code ec;
    for (const char* sub : {"imagesTr", "labelsTr"}) {
        fs::create_directories(fs::path(dir) / sub, ec);
        if (ec) throw std::runtime_error("synthetic MSD " + dir + ": cannot create " + sub + ": " + ec.message());
    }
    nlohmann::json training = nlohmann::json::array();
    Volume image, label;
    for (int i = 0; i < spec.cases; ++i) {
        char name[64];
        std::snprintf(name, sizeof(name), "BRATS_%03d.nii.gz", i + 1);
        synthesize_case(spec, i, image, label);
        // Images and labels compress on two threads: gzip is the slowest part of a case.
        std::exception_ptr label_error;
        std::thread label_writer([&] {
            try {
                write_nifti((fs::path(dir) / "labelsTr" / name).string(), label, NiftiType::uint8);
            } catch (...) {
                label_error = std::current_exception();
            }
        });
        try {
            write_nifti((fs::path(dir) / "imagesTr" / name).string(), image, NiftiType::int16);
        } catch (...) {
            label_writer.join();
            throw;
        }
        label_writer.join();
        if (label_error) std::rethrow_exception(label_error);
        training.push_back({{"image", std::string("./imagesTr/") + name}, {"label", std::string("./labelsTr/") + name}});
        if (progress) progress(i + 1, spec.cases);
    }
    nlohmann::json j;
    j["name"] = "BrainTumour";
    j["description"] = "Synthetic gliomas in the MSD Task01_BrainTumour layout (unet_train)";
    j["reference"] = "generated by unet_train, seed " + std::to_string(spec.seed);
    j["licence"] = "CC-BY-SA 4.0";
    j["release"] = "1.0";
    j["tensorImageSize"] = "4D";
    j["modality"] = {{"0", "FLAIR"}, {"1", "T1w"}, {"2", "t1gd"}, {"3", "T2w"}};
    j["labels"] = {{"0", "background"}, {"1", "edema"}, {"2", "non-enhancing tumor"}, {"3", "enhancing tumour"}};
    j["numTraining"] = spec.cases;
    j["numTest"] = 0;
    j["training"] = training;
    j["test"] = nlohmann::json::array();
    const std::string path = (fs::path(dir) / "dataset.json").string();
    write_file_atomically(path, j.dump(4) + "\n");
}

}  // namespace unet
