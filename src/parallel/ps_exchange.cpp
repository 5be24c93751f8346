#include "unet/parallel/ps_exchange.h"

#include <vector>

#include "mpi_call.h"
#include "unet/core/check.h"

namespace unet {

struct PsWorkerExchange::Requests {
    std::vector<MPI_Request> list;
};

PsWorkerExchange::PsWorkerExchange(Comm& comm, int servers, float* params, const float* grads, int64_t size,
                                   int64_t bucket_floats)
    : comm_(comm.mpi_comm()),
      servers_(servers),
      params_(params),
      grads_(grads),
      buckets_(cut_buckets(size, bucket_floats)),
      open_(new Requests) {
    UNET_CHECK(comm_ && servers >= 1 && servers < comm.size() && comm.rank() >= servers,
               "PsWorkerExchange needs MPI, at least one server, and runs on a worker rank");
    next_ = buckets_.count();
}

PsWorkerExchange::~PsWorkerExchange() = default;

void PsWorkerExchange::post(int b) {
    const int count = int(buckets_.size(b)), server = Buckets::owner(b, servers_);
    const int64_t at = buckets_.begin[size_t(b)];
    MPI_Request send, recv;
    check_mpi(MPI_Isend(grads_ + at, count, MPI_FLOAT, server, kGradTag + b, native_comm(comm_), &send), "MPI_Isend");
    check_mpi(MPI_Irecv(params_ + at, count, MPI_FLOAT, server, kParamTag + b, native_comm(comm_), &recv), "MPI_Irecv");
    open_->list.push_back(send);
    open_->list.push_back(recv);
}

void PsWorkerExchange::push(int64_t ready_from) {
    while (next_ > 0 && buckets_.begin[size_t(next_ - 1)] >= ready_from) post(--next_);
    if (open_->list.empty()) return;
    int all = 0;  // only to drive progress: Open MPI moves messages inside MPI calls
    check_mpi(MPI_Testall(int(open_->list.size()), open_->list.data(), &all, MPI_STATUSES_IGNORE), "MPI_Testall");
}

ExchangeTimes PsWorkerExchange::wait(int64_t, float) {
    while (next_ > 0) post(--next_);
    ExchangeTimes t;
    const double t0 = MPI_Wtime();
    check_mpi(MPI_Waitall(int(open_->list.size()), open_->list.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    t.wait_s = MPI_Wtime() - t0;
    open_->list.clear();
    next_ = buckets_.count();
    return t;
}

}  // namespace unet
