#include "naive_ops.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "unet/core/check.h"
#include "unet/core/rng.h"

namespace unet {
namespace naive {

Shape Shape::of(const Dims& dims) {
    UNET_CHECK(dims.size() == 4 || dims.size() == 5, "naive::Shape needs 4 or 5 dims");
    Shape s;
    s.n = dims[0];
    s.c = dims[1];
    s.nd = int(dims.size()) - 2;
    s.d = s.nd == 3 ? dims[2] : 1;
    s.h = dims[dims.size() - 2];
    s.w = dims[dims.size() - 1];
    return s;
}

Dims Shape::dims() const { return nd == 3 ? Dims{n, c, d, h, w} : Dims{n, c, h, w}; }

Shape Shape::with_channels(int64_t channels) const {
    Shape s = *this;
    s.c = channels;
    return s;
}

Shape Shape::scaled() const {
    Shape s = *this;
    s.d = d * depth_extent(2);
    s.h = h * 2;
    s.w = w * 2;
    return s;
}

Shape Shape::halved() const {
    UNET_CHECK(h % 2 == 0 && w % 2 == 0 && d % depth_extent(2) == 0, "halving odd shape " << str());
    Shape s = *this;
    s.d = d / depth_extent(2);
    s.h = h / 2;
    s.w = w / 2;
    return s;
}

std::string Shape::str() const {
    std::ostringstream os;
    os << n << "x" << c << "x";
    if (nd == 3) os << d << "x";
    os << h << "x" << w;
    return os.str();
}

std::string Shape::coord(int64_t flat) const {
    const int64_t x = flat % w, y = flat / w % h, z = flat / (w * h) % d;
    const int64_t ic = flat / spatial() % c, in = flat / (spatial() * c);
    std::ostringstream os;
    os << "(" << in << "," << ic << ",";
    if (nd == 3) os << z << ",";
    os << y << "," << x << ")";
    return os.str();
}

// --- convolution ----------------------------------------------------------------------------------

namespace {

// Flat index of w[o][i][kz][ky][kx] in PyTorch order for a kernel of extents kd x k x k.
int64_t conv_weight_index(int64_t o, int64_t i, int64_t in_c, int64_t kz, int64_t ky, int64_t kx,
                          int64_t kd, int64_t k) {
    return (((o * in_c + i) * kd + kz) * k + ky) * k + kx;
}

// Calls fn(dst_index, src_index, weight_index, o) for every (output, input, tap) triple of the
// convolution whose source lies inside the image; forward and backward walk the same triples.
template <class Fn>
void conv_taps(const Shape& xs, int64_t out_c, int64_t k, Fn fn) {
    const Shape ys = xs.with_channels(out_c);
    const int64_t kd = xs.depth_extent(k), pad = k / 2, pad_d = kd / 2;
    for (int64_t n = 0; n < xs.n; ++n)
        for (int64_t o = 0; o < out_c; ++o)
            for (int64_t z = 0; z < xs.d; ++z)
                for (int64_t y = 0; y < xs.h; ++y)
                    for (int64_t x = 0; x < xs.w; ++x)
                        for (int64_t i = 0; i < xs.c; ++i)
                            for (int64_t kz = 0; kz < kd; ++kz)
                                for (int64_t ky = 0; ky < k; ++ky)
                                    for (int64_t kx = 0; kx < k; ++kx) {
                                        const int64_t sz = z + kz - pad_d, sy = y + ky - pad, sx = x + kx - pad;
                                        if (sz < 0 || sz >= xs.d || sy < 0 || sy >= xs.h || sx < 0 || sx >= xs.w)
                                            continue;
                                        fn(ys.at(n, o, z, y, x), xs.at(n, i, sz, sy, sx),
                                           conv_weight_index(o, i, xs.c, kz, ky, kx, kd, k), o);
                                    }
}

// Same for the kernel-2 stride-2 transposed convolution: input voxel (z, y, x) of channel i
// contributes w[i][o][kz][ky][kx] to output voxel (2z + kz, 2y + ky, 2x + kx) of channel o.
template <class Fn>
void deconv_taps(const Shape& xs, int64_t out_c, Fn fn) {
    const Shape ys = xs.scaled().with_channels(out_c);
    const int64_t kd = xs.depth_extent(2);
    for (int64_t n = 0; n < xs.n; ++n)
        for (int64_t i = 0; i < xs.c; ++i)
            for (int64_t z = 0; z < xs.d; ++z)
                for (int64_t y = 0; y < xs.h; ++y)
                    for (int64_t x = 0; x < xs.w; ++x)
                        for (int64_t o = 0; o < out_c; ++o)
                            for (int64_t kz = 0; kz < kd; ++kz)
                                for (int64_t ky = 0; ky < 2; ++ky)
                                    for (int64_t kx = 0; kx < 2; ++kx)
                                        fn(ys.at(n, o, z * kd + kz, 2 * y + ky, 2 * x + kx),
                                           xs.at(n, i, z, y, x),
                                           (((i * out_c + o) * kd + kz) * 2 + ky) * 2 + kx, o);
}

void add_bias(const Shape& ys, const Vec& bias, Vec& y) {
    for (int64_t n = 0; n < ys.n; ++n)
        for (int64_t o = 0; o < ys.c; ++o)
            for (int64_t s = 0; s < ys.spatial(); ++s) y[size_t(ys.at(n, o, 0, 0, 0) + s)] += bias[size_t(o)];
}

void bias_grad(const Shape& ys, const Vec& dy, Vec& dbias) {
    dbias.assign(size_t(ys.c), 0.0);
    for (int64_t n = 0; n < ys.n; ++n)
        for (int64_t o = 0; o < ys.c; ++o)
            for (int64_t s = 0; s < ys.spatial(); ++s) dbias[size_t(o)] += dy[size_t(ys.at(n, o, 0, 0, 0) + s)];
}

}  // namespace

Vec conv_forward(const Shape& xs, const Vec& x, const Vec& weight, const Vec& bias, int64_t out_c, int64_t k) {
    UNET_CHECK(k % 2 == 1, "naive conv: odd kernel only");
    const Shape ys = xs.with_channels(out_c);
    UNET_CHECK(int64_t(x.size()) == xs.size(), "naive conv: src size");
    UNET_CHECK(int64_t(weight.size()) == out_c * xs.c * xs.depth_extent(k) * k * k, "naive conv: weight size");
    Vec y(size_t(ys.size()), 0.0);
    conv_taps(xs, out_c, k, [&](int64_t yi, int64_t xi, int64_t wi, int64_t) {
        y[size_t(yi)] += weight[size_t(wi)] * x[size_t(xi)];
    });
    add_bias(ys, bias, y);
    return y;
}

ConvGrads conv_backward(const Shape& xs, const Vec& x, const Vec& weight, int64_t out_c, int64_t k, const Vec& dy) {
    ConvGrads g;
    g.dx.assign(x.size(), 0.0);
    g.dweight.assign(weight.size(), 0.0);
    conv_taps(xs, out_c, k, [&](int64_t yi, int64_t xi, int64_t wi, int64_t) {
        g.dx[size_t(xi)] += weight[size_t(wi)] * dy[size_t(yi)];
        g.dweight[size_t(wi)] += x[size_t(xi)] * dy[size_t(yi)];
    });
    bias_grad(xs.with_channels(out_c), dy, g.dbias);
    return g;
}

Vec deconv_forward(const Shape& xs, const Vec& x, const Vec& weight, const Vec& bias, int64_t out_c) {
    const Shape ys = xs.scaled().with_channels(out_c);
    UNET_CHECK(int64_t(x.size()) == xs.size(), "naive deconv: src size");
    UNET_CHECK(int64_t(weight.size()) == out_c * xs.c * xs.depth_extent(2) * 4, "naive deconv: weight size");
    Vec y(size_t(ys.size()), 0.0);
    deconv_taps(xs, out_c, [&](int64_t yi, int64_t xi, int64_t wi, int64_t) {
        y[size_t(yi)] += weight[size_t(wi)] * x[size_t(xi)];
    });
    add_bias(ys, bias, y);
    return y;
}

ConvGrads deconv_backward(const Shape& xs, const Vec& x, const Vec& weight, int64_t out_c, const Vec& dy) {
    ConvGrads g;
    g.dx.assign(x.size(), 0.0);
    g.dweight.assign(weight.size(), 0.0);
    deconv_taps(xs, out_c, [&](int64_t yi, int64_t xi, int64_t wi, int64_t) {
        g.dx[size_t(xi)] += weight[size_t(wi)] * dy[size_t(yi)];
        g.dweight[size_t(wi)] += x[size_t(xi)] * dy[size_t(yi)];
    });
    bias_grad(xs.scaled().with_channels(out_c), dy, g.dbias);
    return g;
}

// --- max pooling ----------------------------------------------------------------------------------

namespace {

// Calls fn(dst_index, argmax_src_index) for every output of the 2x2(x2) max-pool.
template <class Fn>
void maxpool_windows(const Shape& xs, const Vec& x, Fn fn) {
    const Shape ys = xs.halved();
    const int64_t kd = xs.depth_extent(2);
    for (int64_t n = 0; n < ys.n; ++n)
        for (int64_t c = 0; c < ys.c; ++c)
            for (int64_t z = 0; z < ys.d; ++z)
                for (int64_t y = 0; y < ys.h; ++y)
                    for (int64_t xx = 0; xx < ys.w; ++xx) {
                        int64_t best = -1;
                        for (int64_t kz = 0; kz < kd; ++kz)
                            for (int64_t ky = 0; ky < 2; ++ky)
                                for (int64_t kx = 0; kx < 2; ++kx) {
                                    const int64_t i = xs.at(n, c, z * kd + kz, 2 * y + ky, 2 * xx + kx);
                                    // Strictly greater: the first maximum in scan order wins a tie.
                                    if (best < 0 || x[size_t(i)] > x[size_t(best)]) best = i;
                                }
                        fn(ys.at(n, c, z, y, xx), best);
                    }
}

}  // namespace

Vec maxpool_forward(const Shape& xs, const Vec& x) {
    Vec y(size_t(xs.halved().size()));
    maxpool_windows(xs, x, [&](int64_t yi, int64_t xi) { y[size_t(yi)] = x[size_t(xi)]; });
    return y;
}

Vec maxpool_backward(const Shape& xs, const Vec& x, const Vec& dy) {
    Vec dx(x.size(), 0.0);
    maxpool_windows(xs, x, [&](int64_t yi, int64_t xi) { dx[size_t(xi)] += dy[size_t(yi)]; });
    return dx;
}

// --- up-sampling ----------------------------------------------------------------------------------

namespace {

struct Taps {
    int64_t idx[2] = {0, 0};
    double wei[2] = {0, 0};
};

// The two source taps of output index `o` along one axis of input length `in`, up-sampling by
// `factor` (2, or 1 for the depth axis of a 2D tensor, where the taps are the identity).
Taps axis_taps(int64_t o, int64_t in, int64_t factor, Interp mode) {
    Taps t;
    if (factor == 1) {
        t.idx[0] = t.idx[1] = o;
        t.wei[0] = 1.0;
        return t;
    }
    if (mode == Interp::nearest) {
        t.idx[0] = t.idx[1] = o / 2;
        t.wei[0] = 1.0;
        return t;
    }
    const double src = std::max((double(o) + 0.5) / 2.0 - 0.5, 0.0);
    const int64_t i0 = int64_t(std::floor(src));
    t.idx[0] = i0;
    t.idx[1] = std::min(i0 + 1, in - 1);
    t.wei[1] = src - double(i0);
    t.wei[0] = 1.0 - t.wei[1];
    return t;
}

// Calls fn(dst_index, src_index, weight) for all 2 x 2 x 2 tap combinations of every output.
template <class Fn>
void upsample_taps(const Shape& xs, Interp mode, Fn fn) {
    const Shape ys = xs.scaled();
    const int64_t fd = xs.depth_extent(2);
    for (int64_t n = 0; n < ys.n; ++n)
        for (int64_t c = 0; c < ys.c; ++c)
            for (int64_t z = 0; z < ys.d; ++z) {
                const Taps tz = axis_taps(z, xs.d, fd, mode);
                for (int64_t y = 0; y < ys.h; ++y) {
                    const Taps ty = axis_taps(y, xs.h, 2, mode);
                    for (int64_t x = 0; x < ys.w; ++x) {
                        const Taps tx = axis_taps(x, xs.w, 2, mode);
                        for (int a = 0; a < 2; ++a)
                            for (int b = 0; b < 2; ++b)
                                for (int e = 0; e < 2; ++e)
                                    fn(ys.at(n, c, z, y, x), xs.at(n, c, tz.idx[a], ty.idx[b], tx.idx[e]),
                                       tz.wei[a] * ty.wei[b] * tx.wei[e]);
                    }
                }
            }
}

}  // namespace

Vec upsample_forward(const Shape& xs, const Vec& x, Interp mode) {
    Vec y(size_t(xs.scaled().size()), 0.0);
    upsample_taps(xs, mode, [&](int64_t yi, int64_t xi, double wt) { y[size_t(yi)] += wt * x[size_t(xi)]; });
    return y;
}

Vec upsample_backward(const Shape& xs, const Vec& dy, Interp mode) {
    Vec dx(size_t(xs.size()), 0.0);
    upsample_taps(xs, mode, [&](int64_t yi, int64_t xi, double wt) { dx[size_t(xi)] += wt * dy[size_t(yi)]; });
    return dx;
}

// --- concat -----------------------------------------------------------------------------------------

Vec concat_forward(const Shape& as, const Vec& a, const Shape& bs, const Vec& b) {
    UNET_CHECK(as.n == bs.n && as.spatial() == bs.spatial(), "naive concat: shapes differ");
    const Shape ys = as.with_channels(as.c + bs.c);
    Vec y(size_t(ys.size()));
    for (int64_t n = 0; n < ys.n; ++n)
        for (int64_t c = 0; c < ys.c; ++c)
            for (int64_t s = 0; s < ys.spatial(); ++s)
                y[size_t(ys.at(n, c, 0, 0, 0) + s)] = c < as.c ? a[size_t(as.at(n, c, 0, 0, 0) + s)]
                                                               : b[size_t(bs.at(n, c - as.c, 0, 0, 0) + s)];
    return y;
}

void concat_backward(const Shape& as, const Shape& bs, const Vec& dy, Vec& da, Vec& db) {
    const Shape ys = as.with_channels(as.c + bs.c);
    da.assign(size_t(as.size()), 0.0);
    db.assign(size_t(bs.size()), 0.0);
    for (int64_t n = 0; n < ys.n; ++n)
        for (int64_t c = 0; c < ys.c; ++c)
            for (int64_t s = 0; s < ys.spatial(); ++s) {
                const double g = dy[size_t(ys.at(n, c, 0, 0, 0) + s)];
                if (c < as.c)
                    da[size_t(as.at(n, c, 0, 0, 0) + s)] += g;
                else
                    db[size_t(bs.at(n, c - as.c, 0, 0, 0) + s)] += g;
            }
}

// --- activations ------------------------------------------------------------------------------------

Vec relu_forward(const Vec& x) {
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] > 0 ? x[i] : 0.0;
    return y;
}

Vec relu_backward(const Vec& x, const Vec& dy) {
    Vec dx(x.size());
    for (size_t i = 0; i < x.size(); ++i) dx[i] = x[i] > 0 ? dy[i] : 0.0;
    return dx;
}

Vec sigmoid_forward(const Vec& x) {
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = 1.0 / (1.0 + std::exp(-x[i]));
    return y;
}

Vec sigmoid_backward(const Vec& x, const Vec& dy) {
    Vec dx(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
        const double s = 1.0 / (1.0 + std::exp(-x[i]));
        dx[i] = dy[i] * s * (1.0 - s);
    }
    return dx;
}

// --- normalization --------------------------------------------------------------------------------

namespace {

// Batch and group norm differ only in which elements share statistics: `key(n, c)` names the
// statistics slot of every element of sample n, channel c.
using StatKey = std::function<int64_t(int64_t, int64_t)>;

struct NormState {
    Vec mean, var, count;
    Vec xhat, pre;
};

NormState norm_forward(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta, int64_t slots,
                       const StatKey& key) {
    NormState st;
    st.mean.assign(size_t(slots), 0.0);
    st.var.assign(size_t(slots), 0.0);
    st.count.assign(size_t(slots), 0.0);
    const int64_t S = xs.spatial();
    for (int64_t n = 0; n < xs.n; ++n)
        for (int64_t c = 0; c < xs.c; ++c)
            for (int64_t s = 0; s < S; ++s) {
                st.mean[size_t(key(n, c))] += x[size_t(xs.at(n, c, 0, 0, 0) + s)];
                st.count[size_t(key(n, c))] += 1;
            }
    for (int64_t k = 0; k < slots; ++k) st.mean[size_t(k)] /= st.count[size_t(k)];
    // Two passes: the variance as the mean squared deviation, never E[x^2] - E[x]^2.
    for (int64_t n = 0; n < xs.n; ++n)
        for (int64_t c = 0; c < xs.c; ++c)
            for (int64_t s = 0; s < S; ++s) {
                const double dev = x[size_t(xs.at(n, c, 0, 0, 0) + s)] - st.mean[size_t(key(n, c))];
                st.var[size_t(key(n, c))] += dev * dev;
            }
    for (int64_t k = 0; k < slots; ++k) st.var[size_t(k)] /= st.count[size_t(k)];
    st.xhat.assign(x.size(), 0.0);
    st.pre.assign(x.size(), 0.0);
    for (int64_t n = 0; n < xs.n; ++n)
        for (int64_t c = 0; c < xs.c; ++c) {
            const size_t k = size_t(key(n, c));
            for (int64_t s = 0; s < S; ++s) {
                const size_t i = size_t(xs.at(n, c, 0, 0, 0) + s);
                st.xhat[i] = (x[i] - st.mean[k]) / std::sqrt(st.var[k] + kNormEps);
                st.pre[i] = gamma[size_t(c)] * st.xhat[i] + beta[size_t(c)];
            }
        }
    return st;
}

// With g = dy * [pre > 0] and gxh = gamma * g (the gradient of xhat), the gradient through the
// normalization of one statistics slot of M elements is
//   dx = rstd / M * (M * gxh - sum(gxh) - xhat * sum(gxh * xhat)).
NormGrads norm_backward(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta, int64_t slots,
                        const StatKey& key, const Vec& dy) {
    const NormState st = norm_forward(xs, x, gamma, beta, slots, key);
    NormGrads g;
    g.dx.assign(x.size(), 0.0);
    g.dgamma.assign(size_t(xs.c), 0.0);
    g.dbeta.assign(size_t(xs.c), 0.0);
    Vec sum_g(size_t(slots), 0.0), sum_gx(size_t(slots), 0.0);
    const int64_t S = xs.spatial();
    for (int64_t n = 0; n < xs.n; ++n)
        for (int64_t c = 0; c < xs.c; ++c)
            for (int64_t s = 0; s < S; ++s) {
                const size_t i = size_t(xs.at(n, c, 0, 0, 0) + s), k = size_t(key(n, c));
                const double gr = st.pre[i] > 0 ? dy[i] : 0.0;
                g.dbeta[size_t(c)] += gr;
                g.dgamma[size_t(c)] += gr * st.xhat[i];
                sum_g[k] += gamma[size_t(c)] * gr;
                sum_gx[k] += gamma[size_t(c)] * gr * st.xhat[i];
            }
    for (int64_t n = 0; n < xs.n; ++n)
        for (int64_t c = 0; c < xs.c; ++c)
            for (int64_t s = 0; s < S; ++s) {
                const size_t i = size_t(xs.at(n, c, 0, 0, 0) + s), k = size_t(key(n, c));
                const double gxh = st.pre[i] > 0 ? gamma[size_t(c)] * dy[i] : 0.0;
                const double m = st.count[k];
                g.dx[i] = (m * gxh - sum_g[k] - st.xhat[i] * sum_gx[k]) / (m * std::sqrt(st.var[k] + kNormEps));
            }
    return g;
}

StatKey batch_key() {
    return [](int64_t, int64_t c) { return c; };
}

StatKey group_key(const Shape& xs, int64_t groups) {
    UNET_CHECK(groups >= 1 && xs.c % groups == 0, "naive group norm: " << xs.c << " channels, " << groups << " groups");
    const int64_t per_group = xs.c / groups;
    return [=](int64_t n, int64_t c) { return n * groups + c / per_group; };
}

Vec finish_forward(const NormState& st, Vec* pre, Vec* mean, Vec* var) {
    if (pre) *pre = st.pre;
    if (mean) *mean = st.mean;
    if (var) *var = st.var;
    return relu_forward(st.pre);
}

}  // namespace

Vec batchnorm_relu_forward(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta, Vec* pre, Vec* mean,
                           Vec* var) {
    return finish_forward(norm_forward(xs, x, gamma, beta, xs.c, batch_key()), pre, mean, var);
}

NormGrads batchnorm_relu_backward(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta, const Vec& dy) {
    return norm_backward(xs, x, gamma, beta, xs.c, batch_key(), dy);
}

Vec batchnorm_relu_inference(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta, const Vec& mean,
                             const Vec& var) {
    Vec y(x.size());
    for (int64_t n = 0; n < xs.n; ++n)
        for (int64_t c = 0; c < xs.c; ++c)
            for (int64_t s = 0; s < xs.spatial(); ++s) {
                const size_t i = size_t(xs.at(n, c, 0, 0, 0) + s);
                const double v = gamma[size_t(c)] * (x[i] - mean[size_t(c)]) / std::sqrt(var[size_t(c)] + kNormEps) +
                                 beta[size_t(c)];
                y[i] = v > 0 ? v : 0.0;
            }
    return y;
}

Vec groupnorm_relu_forward(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta, int64_t groups, Vec* pre,
                           Vec* mean, Vec* var) {
    return finish_forward(norm_forward(xs, x, gamma, beta, xs.n * groups, group_key(xs, groups)), pre, mean, var);
}

NormGrads groupnorm_relu_backward(const Shape& xs, const Vec& x, const Vec& gamma, const Vec& beta, int64_t groups,
                                  const Vec& dy) {
    return norm_backward(xs, x, gamma, beta, xs.n * groups, group_key(xs, groups), dy);
}

// --- dropout ----------------------------------------------------------------------------------------

Vec dropout_forward(const Vec& x, const std::vector<uint8_t>& keep, double rate) {
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = keep[i] ? x[i] / (1.0 - rate) : 0.0;
    return y;
}

Vec dropout_backward(const Vec& dy, const std::vector<uint8_t>& keep, double rate) {
    return dropout_forward(dy, keep, rate);  // linear and diagonal: its own adjoint
}

}  // namespace naive

namespace testing {

Vec random_vec(int64_t count, uint64_t seed, double lo, double hi) {
    Rng rng(seed);
    Vec v(static_cast<size_t>(count));
    for (auto& e : v) e = lo + (hi - lo) * double(rng.uniform());
    return v;
}

Vec distinct_vec(int64_t count, uint64_t seed, double spacing) {
    Vec v(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) v[size_t(i)] = (double(i) - double(count - 1) / 2) * spacing;
    Rng rng(seed);
    for (int64_t i = count - 1; i > 0; --i) std::swap(v[size_t(i)], v[size_t(rng.below(i + 1))]);
    return v;
}

Vec away_from_zero(Vec v, double margin) {
    for (auto& e : v)
        if (std::fabs(e) < margin) e = e < 0 ? -margin - std::fabs(e) : margin + e;
    return v;
}

double max_abs(const Vec& v) {
    double m = 0;
    for (double e : v) m = std::max(m, std::fabs(e));
    return m;
}

std::vector<float> to_f32(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }
Vec to_f64(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }
Vec to_f64(const float* p, int64_t count) { return Vec(p, p + count); }

::testing::AssertionResult all_close(const Vec& actual, const Vec& expected, double rtol, double atol,
                                     const Shape* shape) {
    if (actual.size() != expected.size())
        return ::testing::AssertionFailure() << "size " << actual.size() << " != expected " << expected.size();
    int64_t bad = 0;
    std::vector<std::pair<double, size_t>> worst;  // (excess ratio, index)
    for (size_t i = 0; i < actual.size(); ++i) {
        const double lim = atol + rtol * std::fabs(expected[i]);
        const double err = std::fabs(actual[i] - expected[i]);
        if (!(err <= lim)) {  // also catches NaN
            ++bad;
            worst.emplace_back(std::isnan(err) ? 1e300 : err / lim, i);
        }
    }
    if (bad == 0) return ::testing::AssertionSuccess();
    std::sort(worst.begin(), worst.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    auto f = ::testing::AssertionFailure();
    f << bad << " of " << actual.size() << " elements differ (rtol " << rtol << ", atol " << atol << ")";
    for (size_t k = 0; k < std::min<size_t>(worst.size(), 5); ++k) {
        const size_t i = worst[k].second;
        f << "\n  [" << i << "]";
        if (shape) f << " " << shape->coord(int64_t(i));
        f << " actual " << actual[i] << " expected " << expected[i];
    }
    return f;
}

std::vector<int64_t> pick_indices(int64_t count, int64_t take, uint64_t seed) {
    std::vector<int64_t> idx(static_cast<size_t>(count));
    std::iota(idx.begin(), idx.end(), int64_t(0));
    Rng rng(seed);
    for (int64_t i = count - 1; i > 0; --i) std::swap(idx[size_t(i)], idx[size_t(rng.below(i + 1))]);
    if (take > 0 && take < count) idx.resize(size_t(take));
    return idx;
}

namespace {

bool same_signs(const Vec& a, const Vec& b) {
    for (size_t i = 0; i < a.size(); ++i)
        if ((a[i] > 0) != (b[i] > 0) || (a[i] < 0) != (b[i] < 0)) return false;
    return true;
}

double weighted_sum(const Vec& dy, const Vec& y) {
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += dy[i] * y[i];
    return s;
}

}  // namespace

GradCheck check_gradient(const VecFn& f, const Vec& x, const Vec& dy, const Vec& analytic, double h,
                         const VecFn& kinks, int64_t max_coords, uint64_t seed) {
    GradCheck r;
    const double floor = std::max(1e-3 * max_abs(analytic), 1e-12);
    const Vec base_kinks = kinks ? kinks(x) : Vec();
    Vec xp = x;
    for (int64_t i : pick_indices(int64_t(x.size()), max_coords, seed)) {
        const size_t u = size_t(i);
        xp[u] = x[u] + h;
        const Vec yp = f(xp);
        const bool kink_p = kinks && !same_signs(base_kinks, kinks(xp));
        xp[u] = x[u] - h;
        const Vec ym = f(xp);
        const bool kink_m = kinks && !same_signs(base_kinks, kinks(xp));
        xp[u] = x[u];
        if (kink_p || kink_m) {
            ++r.skipped;
            continue;
        }
        const double num = (weighted_sum(dy, yp) - weighted_sum(dy, ym)) / (2 * h);
        const double ana = analytic[u];
        const double err = std::fabs(num - ana) / std::max({std::fabs(num), std::fabs(ana), floor});
        ++r.checked;
        if (r.worst < 0 || err > r.max_err) {
            r.max_err = err;
            r.worst = i;
            r.worst_num = num;
            r.worst_ana = ana;
        }
    }
    return r;
}

::testing::AssertionResult gradient_ok(const GradCheck& r, double tol, const std::string& what) {
    // A check that skipped everything proves nothing; at most half may sit on kinks.
    if (r.checked == 0 || r.skipped > r.checked)
        return ::testing::AssertionFailure() << what << ": only " << r.checked << " coordinates checked, "
                                             << r.skipped << " skipped at kinks";
    if (r.max_err <= tol) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << what << ": relative error " << r.max_err << " > " << tol
                                         << " at coordinate " << r.worst << " (numeric " << r.worst_num
                                         << ", analytic " << r.worst_ana << "; " << r.checked << " checked)";
}

std::optional<double> float_difference(const std::function<std::vector<float>()>& run, float& coord,
                                       const Vec& dy, float h, const std::vector<float>* kink_base) {
    const float saved = coord;
    auto zeros = [](const std::vector<float>& y) {
        std::vector<bool> z(y.size());
        for (size_t i = 0; i < y.size(); ++i) z[i] = y[i] == 0.f;
        return z;
    };
    std::vector<bool> z0;
    if (kink_base) z0 = zeros(*kink_base);
    coord = saved + h;
    const std::vector<float> yp = run();
    coord = saved - h;
    const std::vector<float> ym = run();
    // The step actually taken in float arithmetic, not the nominal 2h.
    const double step = double(saved + h) - double(saved - h);
    coord = saved;
    if (kink_base && (zeros(yp) != z0 || zeros(ym) != z0)) return std::nullopt;
    double lp = 0, lm = 0;
    for (size_t i = 0; i < yp.size(); ++i) {
        lp += dy[i] * double(yp[i]);
        lm += dy[i] * double(ym[i]);
    }
    return (lp - lm) / step;
}

void FloatFdCheck::add(const std::string& what, std::optional<double> num, double ana) {
    if (!num) {
        ++skipped;
        return;
    }
    ++checked;
    if (std::fabs(*num - ana) > atol + rtol * std::fabs(ana)) {
        std::ostringstream os;
        os << "\n  " << what << ": numeric " << *num << ", analytic " << ana;
        failures += os.str();
    }
}

::testing::AssertionResult FloatFdCheck::result() const {
    if (checked == 0 || skipped > checked)
        return ::testing::AssertionFailure() << "only " << checked << " coordinates checked, " << skipped
                                             << " skipped at kinks";
    if (failures.empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "float finite differences disagree (rtol " << rtol << ", atol "
                                         << atol << "):" << failures;
}

Tag layout_tag(Layout layout, int ndims) {
    switch (layout) {
        case Layout::plain: return plain_tag(ndims);
        case Layout::channels_last: return channels_last_tag(ndims);
        case Layout::blocked16: return ndims == 4 ? Tag::nChw16c : Tag::nCdhw16c;
    }
    return Tag::undef;
}

const char* layout_str(Layout layout) {
    switch (layout) {
        case Layout::plain: return "plain";
        case Layout::channels_last: return "cl";
        case Layout::blocked16: return "b16";
    }
    return "?";
}

memory make_memory(const memory::desc& md, const Vec& plain) {
    memory m(md, DnnlContext::get().engine);
    // Zero everything first, padding included: blocked layouts with padded channels must
    // not hand garbage to a primitive.
    std::fill_n(static_cast<char*>(m.get_data_handle()), md.get_size(), char(0));
    if (!plain.empty()) write_f64(plain, m);
    return m;
}

void write_f64(const Vec& plain, const memory& mem) {
    UNET_CHECK(int64_t(plain.size()) == product(mem.get_desc().dims()), "write_f64: size");
    const std::vector<float> f = to_f32(plain);
    write_plain(f.data(), mem);
}

Vec read_f64(const memory& mem) {
    DnnlContext::get().stream.wait();
    return to_f64(to_plain(mem));
}

}  // namespace testing
}  // namespace unet
