// Reference implementations of every layer for the unit tests, and the helpers the tests share.
//
// unet::naive: forward and backward of each layer in double precision on dense, row-major
// N,C,[D],H,W buffers (std::vector<double>). They are written as the textbook loops, with the
// backward as the literal adjoint of the forward loop (scatter where the forward gathers), so
// that they can be read as obviously correct and checked against finite differences in double.
// 2D and 3D share one code path: a 2D tensor has d = 1 and nd = 2, and every kernel or scale
// factor that acts on the depth axis is 1 when nd = 2.
//
// unet::testing: random inputs, tolerant comparisons, central-difference gradient checks (in
// double for the naive code, in float for a oneDNN layer) and the plumbing between plain double
// buffers and oneDNN memories.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "unet/core/dnnl_util.h"

namespace unet {
namespace naive {

using Vec = std::vector<double>;

struct Shape {
    int64_t n = 1, c = 1, d = 1, h = 1, w = 1;
    int nd = 2;  // spatial dims: 2 (then d == 1) or 3

    static Shape of(const Dims& dims);  // {N, C, H, W} or {N, C, D, H, W}
    Dims dims() const;                  // the inverse of of()
    int64_t spatial() const { return d * h * w; }
    int64_t size() const { return n * c * spatial(); }
    int64_t at(int64_t in, int64_t ic, int64_t z, int64_t y, int64_t x) const {
        return (((in * c + ic) * d + z) * h + y) * w + x;
    }
    Shape with_channels(int64_t channels) const;
    // Every spatial dim multiplied (scaled) or divided (halved) by 2; depth only when nd == 3.
    Shape scaled() const;
    Shape halved() const;
    // Depth extent of a k-wide kernel: k in 3D, 1 in 2D.
    int64_t depth_extent(int64_t k) const { return nd == 3 ? k : 1; }
    std::string str() const;                   // "2x3x4x5"
    std::string coord(int64_t flat) const;     // "(n,c,[z,]y,x)" of a flat index
};

// --- convolution: k x k (x k), stride 1, "same" zero padding (k odd), with bias -----------------
// Weights in PyTorch Conv order (O, I, [k,] k, k); dst is N x out_c x same spatial.
Vec conv_forward(const Shape& xs, const Vec& x, const Vec& weight, const Vec& bias, int64_t out_c,
                 int64_t k);
struct ConvGrads {
    Vec dx, dweight, dbias;
};
ConvGrads conv_backward(const Shape& xs, const Vec& x, const Vec& weight, int64_t out_c, int64_t k,
                        const Vec& dy);

// --- transposed convolution: kernel 2, stride 2, no padding, with bias ----------------------------
// Weights in PyTorch ConvTranspose order (I, O, [2,] 2, 2); dst is N x out_c x 2x spatial.
Vec deconv_forward(const Shape& xs, const Vec& x, const Vec& weight, const Vec& bias, int64_t out_c);
ConvGrads deconv_backward(const Shape& xs, const Vec& x, const Vec& weight, int64_t out_c, const Vec& dy);

// --- max pooling: kernel 2, stride 2 ------------------------------------------------------------
// The window is scanned z, y, x (depth only in 3D); the first maximum in that order wins a tie,
// and backward routes each gradient to that one element.
Vec maxpool_forward(const Shape& xs, const Vec& x);
Vec maxpool_backward(const Shape& xs, const Vec& x, const Vec& dy);

// --- up-sampling by 2 in every spatial dim ------------------------------------------------------
// nearest: src = floor(dst / 2). linear: PyTorch align_corners=False, src = (dst + 0.5) / 2 - 0.5
// clamped at 0, interpolating between floor(src) and the next index clamped at the far edge.
enum class Interp { nearest, linear };
Vec upsample_forward(const Shape& xs, const Vec& x, Interp mode);
Vec upsample_backward(const Shape& xs, const Vec& dy, Interp mode);

// --- channel concatenation: dst = [a, b] along C --------------------------------------------------
Vec concat_forward(const Shape& as, const Vec& a, const Shape& bs, const Vec& b);
void concat_backward(const Shape& as, const Shape& bs, const Vec& dy, Vec& da, Vec& db);

// --- element-wise activations -------------------------------------------------------------------
Vec relu_forward(const Vec& x);
Vec relu_backward(const Vec& x, const Vec& dy);  // dy where x > 0
Vec sigmoid_forward(const Vec& x);
Vec sigmoid_backward(const Vec& x, const Vec& dy);

// --- normalization followed by ReLU, eps 1e-5 ---------------------------------------------------
// Batch norm in training mode (statistics over N and spatial per channel, biased variance) and
// group norm (statistics per sample over `groups` consecutive channel groups and spatial).
// `pre` (optional) receives the normalized, scaled and shifted values before the ReLU; `mean` and
// `var` (optional) the statistics, per channel (batch) or per (sample, group) (group).
constexpr double kNormEps = 1e-5;
struct NormGrads {
    Vec dx, dgamma, dbeta;
};
Vec batchnorm_relu_forward(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta,
                           Vec* pre = nullptr, Vec* mean = nullptr, Vec* var = nullptr);
NormGrads batchnorm_relu_backward(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta,
                                  const Vec& dy);
// Eval mode: the given per-channel statistics instead of the batch's.
Vec batchnorm_relu_inference(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta,
                             const Vec& mean, const Vec& var);
Vec groupnorm_relu_forward(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta,
                           int64_t groups, Vec* pre = nullptr, Vec* mean = nullptr, Vec* var = nullptr);
NormGrads groupnorm_relu_backward(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta,
                                  int64_t groups, const Vec& dy);

// --- inverted dropout with a given mask (keep[i] != 0 keeps element i) ---------------------------
Vec dropout_forward(const Vec& x, const std::vector<uint8_t>& keep, double rate);
Vec dropout_backward(const Vec& dy, const std::vector<uint8_t>& keep, double rate);

}  // namespace naive

namespace testing {

using naive::Shape;
using naive::Vec;

// Uniform in [lo, hi), reproducible from the seed.
Vec random_vec(int64_t count, uint64_t seed, double lo = -1.0, double hi = 1.0);
// A shuffled arithmetic sequence centred on 0 with neighbours `spacing` apart: all values
// distinct, so max-pool's argmax cannot change under small perturbations.
Vec distinct_vec(int64_t count, uint64_t seed, double spacing);
// Pushes every value at least `margin` away from 0 (keeps the sign), for inputs of kinks.
Vec away_from_zero(Vec v, double margin);
double max_abs(const Vec& v);

std::vector<float> to_f32(const Vec& v);
Vec to_f64(const std::vector<float>& v);
Vec to_f64(const float* p, int64_t count);

// Every element within atol + rtol * |expected|; the failure message names the worst elements
// (with their coordinates when a shape is given).
::testing::AssertionResult all_close(const Vec& actual, const Vec& expected, double rtol, double atol,
                                     const Shape* shape = nullptr);

// Central-difference check, in double, of an analytic gradient of L(x) = sum(dy * f(x)).
// Coordinates are all of x, or `max_coords` of them picked at random. A coordinate is skipped
// when `kinks` (the pre-activations of a ReLU, or of anything piecewise) changes the sign of
// any element between x - h and x + h: the difference quotient straddles a kink there.
// The error of one coordinate is |num - ana| / max(|num|, |ana|, floor), floor being 1e-3 of the
// largest analytic gradient so that near-zero entries are judged on the gradient's own scale.
struct GradCheck {
    double max_err = 0;
    int64_t checked = 0, skipped = 0, worst = -1;
    double worst_num = 0, worst_ana = 0;
};
using VecFn = std::function<Vec(const Vec&)>;
GradCheck check_gradient(const VecFn& f, const Vec& x, const Vec& dy, const Vec& analytic, double h,
                         const VecFn& kinks = nullptr, int64_t max_coords = 0, uint64_t seed = 1);
::testing::AssertionResult gradient_ok(const GradCheck& r, double tol, const std::string& what);

// Central difference, in float, of L = sum(dy * run()) with respect to the float `coord`, which
// run() must read (an input buffer it writes into a memory, or a ParamStore entry). With
// `kink_base` (run()'s output at the unperturbed point, computed once by the caller), returns
// nullopt when the set of exact zeros in the output at x - h or x + h differs from it: a ReLU
// switched inside the step. `coord` is restored afterwards.
std::optional<double> float_difference(const std::function<std::vector<float>()>& run, float& coord,
                                       const Vec& dy, float h, const std::vector<float>* kink_base);
// Accumulates float-difference results against analytic values and reports the worst one.
struct FloatFdCheck {
    double rtol = 2e-2, atol = 2e-3;
    int64_t checked = 0, skipped = 0;
    std::string failures;
    void add(const std::string& what, std::optional<double> num, double ana);
    ::testing::AssertionResult result() const;
};

// Activation layouts a test hands to a layer: dense plain, channels-last, or 16-channel blocked
// (nChw16c / nCdhw16c, channels padded up to a multiple of 16).
enum class Layout { plain, channels_last, blocked16 };
Tag layout_tag(Layout layout, int ndims);
const char* layout_str(Layout layout);

// oneDNN plumbing: a memory of `md` filled (in any layout) from a plain double buffer, and the
// plain double contents of a memory. Both wait for the stream.
memory make_memory(const memory::desc& md, const Vec& plain = {});
void write_f64(const Vec& plain, const memory& mem);
Vec read_f64(const memory& mem);
// Indices [0, count) in random order, the first `take` of them (all when take >= count).
std::vector<int64_t> pick_indices(int64_t count, int64_t take, uint64_t seed);

}  // namespace testing
}  // namespace unet
