#include "unet/parallel/ps_shard.h"

#include <cstdio>

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "mpi_call.h"
#include "unet/core/check.h"
#include "unet/parallel/ps_exchange.h"

namespace unet {

namespace {
constexpr int kGatherTag = kGradTag - 1;
}

PsShard::PsShard(Comm& comm, int servers, int64_t params, int64_t bucket_floats, const OptimizerConfig& optimizer)
    : rank_(comm.rank()),
      size_(comm.size()),
      servers_(servers),
      comm_(comm.mpi_comm()),
      buckets_(cut_buckets(params, bucket_floats)),
      opt_(optimizer, [&] {
          int64_t n = 0;
          for (int b = 0; b < buckets_.count(); ++b)
              if (Buckets::owner(b, servers) == comm.rank()) n += buckets_.size(b);
          return n;
      }()) {
    UNET_CHECK(comm_ && servers >= 1 && servers < size_ && rank_ < servers, "PsShard runs on a server rank under MPI");
    for (int b = 0; b < buckets_.count(); ++b) {
        if (Buckets::owner(b, servers_) != rank_) continue;
        mine_.push_back(b);
        at_.push_back(shard_);
        shard_ += buckets_.size(b);
    }
    params_.assign(size_t(shard_), 0.f);
    grads_.assign(size_t(shard_), 0.f);
    inbox_.assign(size_t(workers() * shard_), 0.f);
    // Buckets are dealt round-robin, so with fewer buckets than servers the last servers hold
    // nothing and only add a hop: say so once, with the two ways out.
    if (rank_ == 0 && buckets_.count() < servers_)
        std::fprintf(stderr,
                     "warning: --num_ps %d: the model's %lld parameters make %d bucket%s of --bucket_mb, so %d "
                     "server%s hold%s nothing (lower --num_ps or --bucket_mb)\n",
                     servers_, static_cast<long long>(params), buckets_.count(), buckets_.count() == 1 ? "" : "s",
                     servers_ - buckets_.count(), servers_ - buckets_.count() == 1 ? "" : "s",
                     servers_ - buckets_.count() == 1 ? "s" : "");
}

PsShard::~PsShard() = default;

template <class F>
void PsShard::for_own_buckets(F f) const {
    for (size_t k = 0; k < mine_.size(); ++k) f(k, mine_[k], at_[k]);
}

void PsShard::load(const float* params, const std::map<std::string, const float*>& optimizer_state) {
    auto take = [&](const float* whole, float* shard) {
        for_own_buckets([&](size_t, int b, int64_t at) {
            std::copy(whole + buckets_.begin[size_t(b)], whole + buckets_.end[size_t(b)], shard + at);
        });
    };
    take(params, params_.data());
    for (auto& [name, buf] : opt_.state()) {
        auto it = optimizer_state.find(name);
        if (it != optimizer_state.end()) take(it->second, buf->data());
    }
}

ExchangeTimes PsShard::serve(int64_t step, float lr, double timeout_s) {
    ExchangeTimes t;
    const int W = workers();
    std::vector<int> pending(mine_.size(), W);
    // One receive per (own bucket, worker); request r belongs to own bucket r / W and worker r % W.
    std::vector<MPI_Request> recv(mine_.size() * size_t(W));
    for_own_buckets([&](size_t k, int b, int64_t at) {
        for (int w = 0; w < W; ++w)
            check_mpi(MPI_Irecv(inbox_.data() + w * shard_ + at, int(buckets_.size(b)), MPI_FLOAT, servers_ + w,
                                kGradTag + b, native_comm(comm_), &recv[k * size_t(W) + size_t(w)]),
                      "MPI_Irecv");
    });
    opt_.begin_step();
    std::vector<MPI_Request> sends;
    std::vector<int> done(recv.size());
    size_t remaining = recv.size();
    double last_progress = MPI_Wtime();
    while (remaining > 0) {
        int count = 0;
        const double t0 = MPI_Wtime();
        check_mpi(MPI_Testsome(int(recv.size()), recv.data(), &count, done.data(), MPI_STATUSES_IGNORE), "MPI_Testsome");
        if (count == MPI_UNDEFINED || count == 0) {
            if (timeout_s > 0 && MPI_Wtime() - last_progress > timeout_s) {
                std::string silent;
                for (int w = 0; w < W; ++w)
                    for (size_t k = 0; k < mine_.size(); ++k)
                        if (recv[k * size_t(W) + size_t(w)] != MPI_REQUEST_NULL) {
                            silent += (silent.empty() ? "" : ", ") + std::to_string(servers_ + w);
                            break;
                        }
                throw std::runtime_error("worker rank " + silent + " sent no gradients for step " + std::to_string(step) +
                                         " within --step_timeout " + std::to_string(int(timeout_s)) +
                                         " s; stopping the job (the last checkpoint is intact)");
            }
            usleep(50);  // leave the core to the workers on small machines
            t.wait_s += MPI_Wtime() - t0;
            continue;
        }
        t.wait_s += MPI_Wtime() - t0;
        last_progress = MPI_Wtime();
        remaining -= size_t(count);
        for (int i = 0; i < count; ++i) {
            const size_t k = size_t(done[size_t(i)]) / size_t(W);
            if (--pending[k] > 0) continue;
            const double u0 = MPI_Wtime();
            // Worker order, whatever the arrival order: runs are repeatable.
            const int b = mine_[k];
            const int64_t lo = at_[k], n = buckets_.size(b);
            float* out = grads_.data() + lo;
            const float* first = inbox_.data() + lo;
            std::copy(first, first + n, out);
            for (int w = 1; w < W; ++w) {
                const float* in = first + w * shard_;
                for (int64_t j = 0; j < n; ++j) out[j] += in[j];
            }
            opt_.update(params_.data(), grads_.data(), lo, lo + n, lr);
            for (int w = 0; w < W; ++w) {
                MPI_Request r;
                check_mpi(MPI_Isend(params_.data() + lo, int(n), MPI_FLOAT, servers_ + w, kParamTag + b, native_comm(comm_), &r),
                          "MPI_Isend");
                sends.push_back(r);
            }
            t.update_s += MPI_Wtime() - u0;
        }
    }
    const double t0 = MPI_Wtime();
    check_mpi(MPI_Waitall(int(sends.size()), sends.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    t.wait_s += MPI_Wtime() - t0;
    return t;
}

void PsShard::gather_to_root(float* params, float* grads, const std::map<std::string, float*>& optimizer_state) {
    // Every server walks the same list of (buffer, bucket) pairs in the same order.
    std::vector<std::pair<float*, float*>> buffers{{params_.data(), params}};  // (shard, whole)
    buffers.push_back({grads_.data(), grads});
    for (auto& [name, buf] : opt_.state()) {
        auto it = optimizer_state.find(name);
        buffers.push_back({buf->data(), it == optimizer_state.end() ? nullptr : it->second});
    }
    const bool root = rank_ == 0;
    std::vector<int> wanted(buffers.size(), 1);  // root tells the others which buffers it wants
    if (root)
        for (size_t i = 0; i < buffers.size(); ++i) wanted[i] = buffers[i].second != nullptr;
    for (int s = 1; s < servers_; ++s) {
        if (root) check_mpi(MPI_Send(wanted.data(), int(wanted.size()), MPI_INT, s, kGatherTag, native_comm(comm_)), "MPI_Send");
        else if (rank_ == s)
            check_mpi(MPI_Recv(wanted.data(), int(wanted.size()), MPI_INT, 0, kGatherTag, native_comm(comm_), MPI_STATUS_IGNORE),
                      "MPI_Recv");
    }
    for (int b = 0; b < buckets_.count(); ++b) {
        const int owner = Buckets::owner(b, servers_);
        if (owner != rank_ && !root) continue;
        const int count = int(buckets_.size(b));
        const int64_t whole_at = buckets_.begin[size_t(b)];
        const auto k = std::lower_bound(mine_.begin(), mine_.end(), b) - mine_.begin();
        for (size_t i = 0; i < buffers.size(); ++i) {
            if (!wanted[i]) continue;
            if (owner == rank_ && root) {
                std::copy_n(buffers[i].first + at_[size_t(k)], count, buffers[i].second + whole_at);
            } else if (owner == rank_) {
                check_mpi(MPI_Send(buffers[i].first + at_[size_t(k)], count, MPI_FLOAT, 0, kGatherTag, native_comm(comm_)),
                          "MPI_Send");
            } else {
                check_mpi(MPI_Recv(buffers[i].second + whole_at, count, MPI_FLOAT, owner, kGatherTag, native_comm(comm_),
                                   MPI_STATUS_IGNORE),
                          "MPI_Recv");
            }
        }
    }
}

}  // namespace unet
