#include "unet/data/loader.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "unet/core/check.h"
#include "unet/core/rng.h"
#include "unet/data/hdf5_dataset.h"

namespace unet {

std::vector<int64_t> Loader::share(int64_t samples, int64_t global_batch, int rank, int world, int64_t step) {
    const int64_t base = global_batch / world, extra = global_batch % world;
    const int64_t size = base + (rank < extra ? 1 : 0);
    const int64_t offset = rank * base + std::min<int64_t>(rank, extra);
    std::vector<int64_t> pos(static_cast<size_t>(size));
    for (int64_t k = 0; k < size; ++k) pos[size_t(k)] = step * global_batch + offset + k;
    (void)samples;
    return pos;
}

struct Loader::Impl {
    LoaderConfig cfg;
    DatasetReader reader;
    int64_t n = 0, steps = 0, local = 0;
    Dims full, out_spatial;
    int channels = 0;

    std::thread worker;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Batch> queue;
    bool stop = false, done = false;
    std::exception_ptr error;
    double wait = 0;
    int current_epoch = -1, next_epoch = -1;  // consumer side: epoch being read, epoch read ahead

    explicit Impl(const LoaderConfig& c) : cfg(c), reader(c.path) {}
    ~Impl() { halt(); }

    void halt() {
        {
            std::lock_guard<std::mutex> lk(mu);
            stop = true;
        }
        cv.notify_all();
        if (worker.joinable()) worker.join();
    }
    void make_batch(const std::vector<int64_t>& order, int epoch, int64_t step, Batch& b, std::vector<float>& img,
                    std::vector<float>& msk) const;
    void run(int epoch);
};

std::vector<int64_t> Loader::permutation(int64_t n, uint64_t seed, int epoch, bool shuffle) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
    if (!shuffle) return order;
    Rng rng(seed * 0x9E3779B97F4A7C15ull + uint64_t(epoch) + 1);
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng.below(i + 1))]);
    return order;
}

// Crop start per axis: a uniform corner, or centred on a random foreground voxel.
// mask: `regions` channels of the full sample; a voxel is foreground in any of them.
static Dims choose_crop(const Dims& full, const Dims& patch, const float* mask, int regions, bool foreground, Rng& rng) {
    const size_t nd = full.size();
    Dims start(nd, 0);
    int64_t fg_index = -1;
    if (foreground) {
        const int64_t V = product(full);
        auto inside = [&](int64_t i) {
            for (int r = 0; r < regions; ++r)
                if (mask[r * V + i] > 0.5f) return true;
            return false;
        };
        int64_t count = 0;
        for (int64_t i = 0; i < V; ++i) count += inside(i);
        if (count > 0) {
            int64_t pick = rng.below(count);
            for (int64_t i = 0; i < V; ++i)
                if (inside(i) && pick-- == 0) {
                    fg_index = i;
                    break;
                }
        }
    }
    int64_t rem = fg_index;
    Dims centre(nd, 0);
    for (size_t a = nd; a-- > 0;) {
        if (fg_index >= 0) {
            centre[a] = rem % full[a];
            rem /= full[a];
        }
    }
    for (size_t a = 0; a < nd; ++a) {
        const int64_t room = full[a] - patch[a];
        if (room <= 0) continue;
        start[a] = fg_index >= 0 ? std::clamp<int64_t>(centre[a] - patch[a] / 2, 0, room) : rng.below(room + 1);
    }
    return start;
}

void Loader::Impl::make_batch(const std::vector<int64_t>& order, int epoch, int64_t step, Batch& b,
                              std::vector<float>& img, std::vector<float>& msk) const {
    const std::vector<int64_t> pos = Loader::share(n, cfg.global_batch, cfg.rank, cfg.world, step);
    const int64_t V = product(full), P = product(out_spatial);
    b.n = int64_t(pos.size());
    b.channels = channels;
    b.spatial = out_spatial;
    b.images.resize(size_t(b.n * channels * P));
    const int R = int(cfg.regions.size());
    b.masks.resize(size_t(b.n * R * P));
    b.indices.resize(size_t(b.n));
    img.resize(size_t(channels * V));
    msk.resize(size_t(R * V));
    const size_t nd = full.size();
    for (int64_t k = 0; k < b.n; ++k) {
        const int64_t global_pos = pos[size_t(k)];
        const int64_t index = order[size_t(global_pos % n)];
        b.indices[size_t(k)] = index;
        reader.read_sample(cfg.split, index, img.data(), msk.data(), cfg.regions);
        Rng rng(cfg.seed ^ (uint64_t(epoch) << 40) ^ (uint64_t(global_pos) * 0xD1B54A32D192ED03ull));
        const bool fg = !cfg.patch.empty() && rng.uniform() < cfg.fg_fraction;
        const Dims start = cfg.patch.empty() ? Dims(nd, 0) : choose_crop(full, out_spatial, msk.data(), R, fg, rng);
        bool flip[3] = {false, false, false};
        float scale[64], shift[64];
        for (int c = 0; c < channels; ++c) scale[c % 64] = 1.f, shift[c % 64] = 0.f;
        if (cfg.augment) {
            for (size_t a = 0; a < nd; ++a) flip[a] = rng.uniform() < 0.5f;
            for (int c = 0; c < channels; ++c) scale[c % 64] = rng.uniform(0.9f, 1.1f), shift[c % 64] = rng.uniform(-0.1f, 0.1f);
        }
        // Copy the crop, flipping per axis; spatial dims padded to 3 as (D, H, W).
        const int64_t fh = full[nd - 2], fw = full[nd - 1];
        const int64_t pd = nd == 3 ? out_spatial[0] : 1, ph = out_spatial[nd - 2], pw = out_spatial[nd - 1];
        const int64_t sd = nd == 3 ? start[0] : 0, sh = start[nd - 2], sw = start[nd - 1];
        const bool flip_d = nd == 3 && flip[0], flip_h = flip[nd - 2], flip_w = flip[nd - 1];
        for (int64_t z = 0; z < pd; ++z)
            for (int64_t y = 0; y < ph; ++y)
                for (int64_t x = 0; x < pw; ++x) {
                    const int64_t iz = sd + (flip_d ? pd - 1 - z : z), iy = sh + (flip_h ? ph - 1 - y : y),
                                  ix = sw + (flip_w ? pw - 1 - x : x);
                    const int64_t src = (iz * fh + iy) * fw + ix, dst = (z * ph + y) * pw + x;
                    for (int c = 0; c < channels; ++c) {
                        const float v = img[size_t(c * V + src)];
                        // Background (exactly 0 after preparation) stays 0 under the intensity jitter.
                        b.images[size_t((k * channels + c) * P + dst)] = v == 0.f ? 0.f : v * scale[c % 64] + shift[c % 64];
                    }
                    for (int r = 0; r < R; ++r) b.masks[size_t((k * R + r) * P + dst)] = msk[size_t(r * V + src)];
                }
    }
}

// Produces the batches of `first` and, with cfg.continuous, of the epochs after it, each epoch
// followed by an end marker (a batch with n = 0), so the first batches of the next epoch are read
// while the current one finishes.
void Loader::Impl::run(int first) {
    try {
        std::vector<float> img, msk;
        for (int epoch = first; epoch == first || cfg.continuous; ++epoch) {
            const std::vector<int64_t> order = permutation(n, cfg.seed, epoch, cfg.shuffle);
            for (int64_t step = 0; step <= steps; ++step) {
                Batch b;
                if (step < steps) make_batch(order, epoch, step, b, img, msk);
                std::unique_lock<std::mutex> lk(mu);
                cv.wait(lk, [&] { return stop || int(queue.size()) < cfg.prefetch; });
                if (stop) return;
                queue.push_back(std::move(b));
                cv.notify_all();
            }
        }
    } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        error = std::current_exception();
    }
    std::lock_guard<std::mutex> lk(mu);
    done = true;
    cv.notify_all();
}

Loader::Loader(const LoaderConfig& config) : impl_(new Impl(config)) {
    Impl& m = *impl_;
    m.reader.check_regions(config.regions);
    if (!m.reader.has_split(config.split))
        throw std::runtime_error(config.path + ": no '" + config.split + "' split in this dataset");
    UNET_CHECK(config.world >= 1 && config.rank >= 0 && config.rank < config.world, "rank " << config.rank);
    if (config.global_batch < config.world)
        throw UsageError("--batch_size: the global batch (" + std::to_string(config.global_batch) +
                         ") must be at least the number of workers (" + std::to_string(config.world) + ")");
    m.n = m.reader.count(config.split);
    m.steps = (m.n + config.global_batch - 1) / config.global_batch;
    m.local = int64_t(Loader::share(m.n, config.global_batch, config.rank, config.world, 0).size());
    m.channels = m.reader.channels();
    m.full = m.reader.spatial();
    m.out_spatial = m.full;
    if (!config.patch.empty()) {
        if (config.patch.size() != m.full.size())
            throw UsageError("--patch: expected " + std::to_string(m.full.size()) + " sizes for this dataset");
        for (size_t a = 0; a < m.full.size(); ++a)
            if (config.patch[a] > m.full[a])
                throw UsageError("--patch: " + std::to_string(config.patch[a]) + " is larger than the volume (" +
                                 std::to_string(m.full[a]) + ")");
        m.out_spatial = config.patch;
    }
}

Loader::~Loader() = default;

int64_t Loader::samples() const { return impl_->n; }
int64_t Loader::steps_per_epoch() const { return impl_->steps; }
int64_t Loader::local_batch() const { return impl_->local; }
int Loader::channels() const { return impl_->channels; }
Dims Loader::sample_spatial() const { return impl_->out_spatial; }
int64_t Loader::memory_bytes() const {
    const Impl& m = *impl_;
    const int64_t per_voxel = 4 * (int64_t(m.channels) + int64_t(m.cfg.regions.size()));  // images, masks: f32
    const int64_t batches = int64_t(m.cfg.prefetch) + 2;
    return batches * m.local * per_voxel * product(m.out_spatial) + per_voxel * product(m.full) +
           m.reader.sample_cache_bytes();
}

double Loader::wait_seconds() const { return impl_->wait; }

void Loader::start_epoch(int epoch) {
    Impl& m = *impl_;
    m.wait = 0;
    if (m.worker.joinable() && m.next_epoch == epoch) return;  // already being read ahead
    m.halt();
    m.queue.clear();
    m.stop = m.done = false;
    m.error = nullptr;
    m.wait = 0;
    m.next_epoch = epoch;  // nothing of it consumed yet: a repeated start_epoch(epoch) keeps it
    m.worker = std::thread([&m, epoch] { m.run(epoch); });
    m.current_epoch = epoch;
}

bool Loader::next(Batch& out) {
    Impl& m = *impl_;
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lk(m.mu);
    m.cv.wait(lk, [&] { return !m.queue.empty() || m.done || m.error; });
    m.wait += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (m.error) std::rethrow_exception(m.error);
    if (m.queue.empty()) return false;
    out = std::move(m.queue.front());
    m.queue.pop_front();
    m.cv.notify_all();
    if (out.n == 0) {  // end of the epoch
        m.next_epoch = m.cfg.continuous ? ++m.current_epoch : -1;
        return false;
    }
    m.next_epoch = -1;
    return true;
}

}  // namespace unet
