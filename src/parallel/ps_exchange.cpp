#include "unet/parallel/ps_exchange.h"

#include "requests.h"
#include "unet/core/check.h"

namespace unet {

PsWorkerExchange::PsWorkerExchange(Comm& comm, int servers, float* params, const float* grads, int64_t size,
                                   int64_t bucket_floats)
    : BucketedExchange(comm, size, bucket_floats, "PsWorkerExchange"), servers_(servers), params_(params), grads_(grads) {
    UNET_CHECK(servers >= 1 && servers < comm.size() && comm.rank() >= servers,
               "PsWorkerExchange needs at least one server and runs on a worker rank");
}

void PsWorkerExchange::post(int b) {
    const int count = int(buckets_.size(b)), server = Buckets::owner(b, servers_);
    const int64_t at = buckets_.begin[size_t(b)];
    MPI_Request send, recv;
    check_mpi(MPI_Isend(grads_ + at, count, MPI_FLOAT, server, kGradTag + b, native_comm(comm_), &send), "MPI_Isend");
    check_mpi(MPI_Irecv(params_ + at, count, MPI_FLOAT, server, kParamTag + b, native_comm(comm_), &recv), "MPI_Irecv");
    requests().list.push_back(send);
    requests().list.push_back(recv);
}

ExchangeTimes PsWorkerExchange::wait(int64_t, float) {
    post_rest();
    std::vector<MPI_Request>& open = requests().list;
    ExchangeTimes t;
    const double t0 = MPI_Wtime();
    check_mpi(MPI_Waitall(int(open.size()), open.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    t.wait_s = MPI_Wtime() - t0;
    open.clear();
    return t;
}

}  // namespace unet
