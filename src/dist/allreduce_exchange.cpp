#include "unet/dist/allreduce_exchange.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "mpi_call.h"
#include "unet/core/check.h"

namespace unet {

void cut_buckets(int64_t params, int64_t bucket_floats, int64_t max_buckets, std::vector<int64_t>& begin,
                 std::vector<int64_t>& end) {
    bucket_floats = std::max<int64_t>({bucket_floats, (params + max_buckets - 1) / max_buckets, 1});
    begin.clear();
    end.clear();
    for (int64_t b = 0; b < params; b += bucket_floats) {
        begin.push_back(b);
        end.push_back(std::min(params, b + bucket_floats));
    }
}

struct AllreduceExchange::Requests {
    std::vector<MPI_Request> list;
};

AllreduceExchange::AllreduceExchange(Comm& comm, int64_t params, int64_t bucket_floats)
    : comm_(comm.mpi_comm()), open_(new Requests) {
    UNET_CHECK(comm_, "AllreduceExchange needs MPI");
    cut_buckets(params, bucket_floats, 100000, begin_, end_);
    next_ = int(begin_.size());
}

AllreduceExchange::~AllreduceExchange() = default;

void AllreduceExchange::start(int b, float* grads) {
    MPI_Request r;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, grads + begin_[size_t(b)], int(end_[size_t(b)] - begin_[size_t(b)]), MPI_FLOAT,
                             MPI_SUM, native_comm(comm_), &r),
              "MPI_Iallreduce");
    open_->list.push_back(r);
}

void AllreduceExchange::ready(float* grads, int64_t ready_from) {
    while (next_ > 0 && begin_[size_t(next_ - 1)] >= ready_from) start(--next_, grads);
    if (open_->list.empty()) return;
    int all = 0;  // drives progress only
    check_mpi(MPI_Testall(int(open_->list.size()), open_->list.data(), &all, MPI_STATUSES_IGNORE), "MPI_Testall");
}

double AllreduceExchange::finish(float* grads, int64_t step, double timeout_s) {
    while (next_ > 0) start(--next_, grads);
    const double t0 = MPI_Wtime();
    for (int done = 0; !done;) {
        check_mpi(MPI_Testall(int(open_->list.size()), open_->list.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
        if (done) break;
        if (timeout_s > 0 && MPI_Wtime() - t0 > timeout_s)
            throw std::runtime_error("the gradient all-reduce of step " + std::to_string(step) +
                                     " did not complete within --step_timeout " + std::to_string(int(timeout_s)) +
                                     " s (a rank stalled in backward?); stopping the job (the last checkpoint is intact)");
        usleep(50);  // leave the core to the other ranks on small machines
    }
    open_->list.clear();
    next_ = int(begin_.size());
    return MPI_Wtime() - t0;
}

}  // namespace unet
