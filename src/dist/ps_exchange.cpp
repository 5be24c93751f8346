#include "unet/dist/ps_exchange.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "mpi_call.h"
#include "unet/core/check.h"
#include "unet/dist/allreduce_exchange.h"

namespace unet {

struct PsExchange::Requests {
    std::vector<MPI_Request> list;
};

namespace {

// Gradients travel on tags kGradTag + bucket, parameters on kParamTag + bucket.
constexpr int kGradTag = 1000;
constexpr int kMaxBuckets = 100000;
constexpr int kParamTag = kGradTag + kMaxBuckets;

double now() { return MPI_Wtime(); }

}  // namespace

PsExchange::PsExchange(Comm& comm, int servers, int64_t params, int64_t bucket_floats)
    : rank_(comm.rank()), size_(comm.size()), servers_(servers), comm_(comm.mpi_comm()), open_(new Requests) {
    UNET_CHECK(comm_ && servers >= 1 && servers < size_, "PsExchange needs MPI, at least one server and one worker");
    cut_buckets(params, bucket_floats, kMaxBuckets, begin_, end_);
    next_ = buckets();
    // A server receives only its own buckets: they sit packed in its inbox, one copy per worker.
    for (int b = 0; b < buckets(); ++b) {
        if (owner(b) != rank_) continue;
        inbox_at_.push_back(shard_);
        shard_ += end_[size_t(b)] - begin_[size_t(b)];
    }
    if (is_server()) inbox_.assign(size_t(workers() * shard_), 0.f);
}

PsExchange::~PsExchange() = default;

void PsExchange::post(int b, const float* grads, float* params) {
    const int count = int(end_[size_t(b)] - begin_[size_t(b)]);
    MPI_Request send, recv;
    check_mpi(MPI_Isend(grads + begin_[size_t(b)], count, MPI_FLOAT, owner(b), kGradTag + b, native_comm(comm_), &send),
              "MPI_Isend");
    check_mpi(MPI_Irecv(params + begin_[size_t(b)], count, MPI_FLOAT, owner(b), kParamTag + b, native_comm(comm_), &recv),
              "MPI_Irecv");
    open_->list.push_back(send);
    open_->list.push_back(recv);
}

void PsExchange::worker_ready(const float* grads, float* params, int64_t ready_from) {
    while (next_ > 0 && begin_[size_t(next_ - 1)] >= ready_from) post(--next_, grads, params);
    if (open_->list.empty()) return;
    int all = 0;  // only to drive progress: Open MPI moves messages inside MPI calls
    check_mpi(MPI_Testall(int(open_->list.size()), open_->list.data(), &all, MPI_STATUSES_IGNORE), "MPI_Testall");
}

ExchangeTimes PsExchange::worker_finish(const float* grads, float* params) {
    ExchangeTimes t;
    while (next_ > 0) post(--next_, grads, params);
    const double t0 = now();
    check_mpi(MPI_Waitall(int(open_->list.size()), open_->list.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    t.wait_s = now() - t0;
    open_->list.clear();
    next_ = buckets();
    return t;
}

ExchangeTimes PsExchange::serve(Optimizer& opt, float lr, float* grads, float* params, int64_t step, double timeout_s) {
    ExchangeTimes t;
    const int64_t n = shard_;  // one worker's part of the inbox
    const int W = workers();
    std::vector<int> mine, pending(size_t(buckets()), 0);
    for (int b = 0; b < buckets(); ++b)
        if (owner(b) == rank_) mine.push_back(b);
    // One receive per (bucket, worker); request r belongs to bucket mine[r / W] and worker r % W.
    std::vector<MPI_Request> recv(mine.size() * size_t(W));
    for (size_t k = 0; k < mine.size(); ++k) {
        const int b = mine[k];
        const int count = int(end_[size_t(b)] - begin_[size_t(b)]);
        pending[size_t(b)] = W;
        for (int w = 0; w < W; ++w)
            check_mpi(MPI_Irecv(inbox_.data() + w * n + inbox_at_[k], count, MPI_FLOAT, servers_ + w, kGradTag + b,
                                native_comm(comm_), &recv[k * size_t(W) + size_t(w)]),
                      "MPI_Irecv");
    }
    opt.begin_step();
    std::vector<MPI_Request> sends;
    std::vector<int> done(recv.size());
    size_t remaining = recv.size();
    double last_progress = now();
    while (remaining > 0) {
        int count = 0;
        const double t0 = now();
        check_mpi(MPI_Testsome(int(recv.size()), recv.data(), &count, done.data(), MPI_STATUSES_IGNORE), "MPI_Testsome");
        if (count == MPI_UNDEFINED || count == 0) {
            if (timeout_s > 0 && now() - last_progress > timeout_s) {
                std::string silent;
                for (int w = 0; w < W; ++w)
                    for (size_t k = 0; k < mine.size(); ++k)
                        if (recv[k * size_t(W) + size_t(w)] != MPI_REQUEST_NULL) {
                            silent += (silent.empty() ? "" : ", ") + std::to_string(servers_ + w);
                            break;
                        }
                throw std::runtime_error("worker rank " + silent + " sent no gradients for step " + std::to_string(step) +
                                         " within --step_timeout " + std::to_string(int(timeout_s)) +
                                         " s; stopping the job (the last checkpoint is intact)");
            }
            usleep(50);  // leave the core to the workers on small machines
            t.wait_s += now() - t0;
            continue;
        }
        t.wait_s += now() - t0;
        last_progress = now();
        remaining -= size_t(count);
        for (int i = 0; i < count; ++i) {
            const size_t k = size_t(done[size_t(i)]) / size_t(W);
            const int b = mine[k];
            if (--pending[size_t(b)] > 0) continue;
            const double u0 = now();
            // Worker order, whatever the arrival order: runs are repeatable.
            const int64_t lo = begin_[size_t(b)], hi = end_[size_t(b)];
            const float* first = inbox_.data() + inbox_at_[k];
            std::copy(first, first + (hi - lo), grads + lo);
            for (int w = 1; w < W; ++w) {
                const float* in = first + w * n;
                float* out = grads + lo;
                for (int64_t j = 0; j < hi - lo; ++j) out[j] += in[j];
            }
            opt.update(params, grads, lo, hi, lr);
            for (int w = 0; w < W; ++w) {
                MPI_Request r;
                check_mpi(MPI_Isend(params + lo, int(hi - lo), MPI_FLOAT, servers_ + w, kParamTag + b, native_comm(comm_), &r),
                          "MPI_Isend");
                sends.push_back(r);
            }
            t.update_s += now() - u0;
        }
    }
    const double t0 = now();
    check_mpi(MPI_Waitall(int(sends.size()), sends.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    t.wait_s += now() - t0;
    return t;
}

void PsExchange::gather_to_root(Optimizer& opt, float* params, float* grads) {
    if (!is_server() || servers_ == 1) return;
    std::vector<float*> buffers{params};
    if (grads) buffers.push_back(grads);
    for (auto& [name, buf] : opt.state()) buffers.push_back(buf->data());
    for (int b = 0; b < buckets(); ++b) {
        if (owner(b) == 0) continue;
        const int count = int(end_[size_t(b)] - begin_[size_t(b)]);
        for (size_t k = 0; k < buffers.size(); ++k) {
            float* at = buffers[k] + begin_[size_t(b)];
            if (rank_ == owner(b))
                check_mpi(MPI_Send(at, count, MPI_FLOAT, 0, kGradTag - 1, native_comm(comm_)), "MPI_Send");
            else if (rank_ == 0)
                check_mpi(MPI_Recv(at, count, MPI_FLOAT, owner(b), kGradTag - 1, native_comm(comm_), MPI_STATUS_IGNORE),
                          "MPI_Recv");
        }
    }
}

}  // namespace unet
