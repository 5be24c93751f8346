#include "unet/parallel/bucketed_exchange.h"

#include <stdexcept>
#include <string>

#include "requests.h"

namespace unet {

BucketedExchange::BucketedExchange(Comm& comm, int64_t size, int64_t bucket_floats, const char* what)
    : comm_(comm.mpi_comm()), buckets_(cut_buckets(size, bucket_floats)), open_(new Requests) {
    if (!comm_) throw std::logic_error(std::string(what) + " needs MPI (several ranks)");
    next_ = buckets_.count();
}

BucketedExchange::~BucketedExchange() = default;

void BucketedExchange::push(int64_t ready_from) {
    while (next_ > 0 && buckets_.begin[size_t(next_ - 1)] >= ready_from) post(--next_);
    if (open_->list.empty()) return;
    int all = 0;  // only to drive progress
    check_mpi(MPI_Testall(int(open_->list.size()), open_->list.data(), &all, MPI_STATUSES_IGNORE), "MPI_Testall");
}

void BucketedExchange::post_rest() {
    while (next_ > 0) post(--next_);
    next_ = buckets_.count();
}

}  // namespace unet
