#include "unet/parallel/allreduce_exchange.h"

#include <unistd.h>

#include <stdexcept>
#include <string>

#include "requests.h"

namespace unet {

AllreduceExchange::AllreduceExchange(Comm& comm, Optimizer& opt, float* params, float* grads, int64_t size,
                                     int64_t bucket_floats, double timeout_s)
    : BucketedExchange(comm, size, bucket_floats, "AllreduceExchange"),
      opt_(opt),
      params_(params),
      grads_(grads),
      timeout_s_(timeout_s) {}

void AllreduceExchange::post(int b) {
    MPI_Request r;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, grads_ + buckets_.begin[size_t(b)], int(buckets_.size(b)), MPI_FLOAT, MPI_SUM,
                             native_comm(comm_), &r),
              "MPI_Iallreduce");
    requests().list.push_back(r);
}

ExchangeTimes AllreduceExchange::wait(int64_t step, float lr) {
    post_rest();
    std::vector<MPI_Request>& open = requests().list;
    ExchangeTimes t;
    const double t0 = MPI_Wtime();
    for (int done = 0; !done;) {
        check_mpi(MPI_Testall(int(open.size()), open.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
        if (done) break;
        if (timeout_s_ > 0 && MPI_Wtime() - t0 > timeout_s_)
            throw std::runtime_error("the gradient all-reduce of step " + std::to_string(step) +
                                     " did not complete within --step_timeout " + std::to_string(int(timeout_s_)) +
                                     " s (a rank stalled in backward?); stopping the job (the last checkpoint is intact)");
        usleep(50);  // leave the core to the other ranks on small machines
    }
    open.clear();
    const double t1 = MPI_Wtime();
    t.wait_s = t1 - t0;
    opt_.step(params_, grads_, lr);
    t.update_s = MPI_Wtime() - t1;
    return t;
}

}  // namespace unet
